"""Fixtures and hooks only; what they hand out lives in tests/support/.

Tiers: a test is marked ``kafka``, ``browser``, ``netns`` or ``mirror`` by the
fixtures it requests, directly or through other fixtures (``TIER_FIXTURES`` in
tests/support/tiers.py), never by hand, so ``make test-fast`` cannot pick up a
test that starts a broker, and a broker test cannot lose its marker.

The session starts one Apache Kafka 4 broker (single-node KRaft on free
loopback ports, jars from Maven Central cached under ``var/kafka/lib``) unless
``FIREPLOT_TEST_BOOTSTRAP`` names a running one. Each test that needs the
pipeline gets a ``System`` (tests/support/system.py) with its own topic,
consumer group and store, so tests never see each other's events.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.broker import LocalKafka
from tests.support import browser, netlab
from tests.support.s3 import S3, S3_ENV
from tests.support.system import JAR_CACHE, System, local_broker
from tests.support.tiers import TIER_FIXTURES

# The test command builds the native netfilter scanner: every test (and every
# fireplot process a test starts) must use it, and a batch it refuses fails
# loudly instead of quietly taking the pyarrow path. Tests of that path set
# the variable to "arrow" themselves.
os.environ.setdefault("FIREPLOT_NETFILTER_ENGINE", "native")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the tiers of the fixtures it needs (``fixturenames`` is transitive)."""
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        for fixture, markers in TIER_FIXTURES.items():
            if fixture in needs:
                for marker in markers:
                    item.add_marker(marker)


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The broker's jars (fetched by scripts/bootstrap): for tests that run brokers of their own."""
    return JAR_CACHE


@pytest.fixture(scope="session")
def mirror_jars(kafka_jars: Path) -> Path:
    """The jars MirrorMaker 2 runs from (the broker's): for the multi-cluster tests."""
    return kafka_jars


@pytest.fixture(scope="session")
def chromium() -> browser.Chromium:
    """``browser.chromium``: opens headless Chromium; the test is skipped when it is not installed."""
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    return browser.chromium


@pytest.fixture(scope="session")
def netns() -> None:
    """The machine can build the network lab (root, ip, nft, ulogd2, nmap); skipped with the reason if not."""
    netlab.skip_unless_available()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("FIREPLOT_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    broker = local_broker(tmp_path_factory.mktemp("kafka"))
    cfg = broker.cfg
    broker.up()
    try:
        yield cfg.local_bootstrap
    finally:
        broker.down()


@pytest.fixture(scope="session")
def spare_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The second broker of the session, for the tests that stop and start one (``own_broker``)."""
    broker = local_broker(tmp_path_factory.mktemp("kafka2"))
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture
def own_broker(spare_broker: LocalKafka) -> LocalKafka:
    """A broker the test may stop and start (the session one is shared by every other test).

    One broker serves every such test in turn (tests run one at a time), up again at each test's
    start whatever the last one left: a start and stop of a JVM per test less. Each test has its
    own topics and groups on it (``System``), so what an earlier test left there is never read."""
    spare_broker.up()
    return spare_broker


@pytest.fixture
def system(tmp_path: Path, kafka_bootstrap: str) -> Iterator[System]:
    sysm = System(tmp_path, kafka_bootstrap)
    try:
        yield sysm
    finally:
        sysm.stop()


@pytest.fixture
def raw_system(system: System) -> System:
    """A system whose worker also reads a raw-lines topic; like every system, its group gives up a
    killed peer's partitions fast (``session_timeout_s`` in tests/support/system.py)."""
    system.configure("kafka", raw_topic=f"{system.topic}-raw")
    return system


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1 for the module, credentials in the environment meanwhile."""
    # Imported here: only the sessions that run an S3 test pay for loading moto.
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield S3(server.get_host_and_port()[1])
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
