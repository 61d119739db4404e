# The two commands of the README. Both set up what a fresh machine lacks first.
.PHONY: up test test-fast lint bench

up:            ## run Kafka, worker, web UI and a demo shipper; prints the URL
	@scripts/bootstrap run
	.venv/bin/fireplot --plain-logs up

test:          ## the whole test suite on real parts (Kafka, Chromium, nftables + ulogd2 + nmap)
	@scripts/bootstrap test
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/pytest

# Everything no broker, browser, network namespace or MirrorMaker is needed for (markers set by
# tests/conftest.py from the fixtures a test uses): unit, golden and property tests, for iterating.
test-fast:     ## the unit, golden and property tests only (a few minutes); `make test` stays the whole suite
	@scripts/bootstrap test
	.venv/bin/pytest -m "not kafka and not browser and not netns and not mirror"

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy

bench:         ## benchmarks: ours against a reference, side by side, ratios printed
	@scripts/bootstrap test
	.venv/bin/python benchmarks/run_all.py
