# The two commands of the README. Both set up what a fresh machine lacks first.
.PHONY: up test lint bench

up:            ## run Kafka, worker, web UI and a demo shipper; prints the URL
	@scripts/bootstrap run
	.venv/bin/fireplot --plain-logs up

test:          ## the whole test suite on real parts (Kafka, Chromium, nftables + ulogd2 + nmap)
	@scripts/bootstrap test
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/pytest

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy

bench:         ## benchmarks: ours against a reference, side by side, ratios printed
	@scripts/bootstrap test
	.venv/bin/python benchmarks/run_all.py
