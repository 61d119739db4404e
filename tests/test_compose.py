"""The container deployment (docker-compose.yml, deploy/Dockerfile), checked without Docker.

`docker-compose config` validates the compose file against the Compose schema and prints
the resolved configuration (anchors merged, paths absolute, ports and volumes
normalised). The tests assert on that output, not on the text of the file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumers.web import auth
from pipeline import config
from pipeline.config import KafkaConfig, WebConfig

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKER_COMPOSE = shutil.which("docker-compose")

needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="the docker-compose binary is not on PATH (Debian: apt-get install docker-compose); "
    "without it the compose file cannot be validated",
)

SERVICES = {"kafka", "topics", "worker", "detector", "web", "demo"}
SITES = ("site-a", "site-b")
SITE_SERVICES = {f"{kind}-{site}" for site in SITES for kind in ("kafka", "topics", "shipper")} | {"mirror"}
MM2 = REPO / "deploy" / "mm2.properties"
TLS_OVERRIDE = REPO / "deploy" / "docker-compose.tls.yml"
TLS_ENV = {"FIREPLOT_TLS_KEYSTORE_PASSWORD": "keystore-secret", "FIREPLOT_SCRAM_PASSWORD": "scram-secret"}


# ---- helpers -------------------------------------------------------------------------


def compose_config(
    path: Path, *args: str, overrides: tuple[Path, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` on a file (and override files), isolated from the caller's
    COMPOSE_* and FIREPLOT_* settings; ``env`` adds variables for interpolation."""
    assert DOCKER_COMPOSE is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "FIREPLOT_"))}
    files = [arg for f in (path, *overrides) for arg in ("-f", str(f))]
    return subprocess.run(
        [DOCKER_COMPOSE, *files, "--project-directory", str(REPO), "config", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **(env or {})},
    )


def resolve(
    path: Path, overrides: tuple[Path, ...] = (), env: dict[str, str] | None = None
) -> dict[str, Any]:
    proc = compose_config(path, overrides=overrides, env=env)
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    cfg = yaml.safe_load(proc.stdout)
    assert isinstance(cfg, dict)
    return cfg


def service(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    services = cfg.get("services", {})
    assert name in services, f"service {name!r} missing; have {sorted(services)}"
    svc: dict[str, Any] = services[name]
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, whichever form (mapping or list) it was written in."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def flag(args: list[str], name: str) -> str | None:
    """The value after `name` (or of `name=value`) in an argument list."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` as {NAME: (host, port)}; an empty host means all interfaces."""
    out: dict[str, tuple[str, int]] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)://(.*):(\d+)", entry)
        assert m, f"not a listener: {entry!r}"
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def published_ports(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host_ip, published, target) for each published port, short or long syntax."""
    out: list[tuple[str, int, int]] = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out.append((str(p.get("host_ip", "")), int(p["published"]), int(p["target"])))
            continue
        parts = str(p).split("/", 1)[0].split(":")
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append(("", int(parts[0]), int(parts[1])))
        else:  # container port only: Docker picks a host port on every interface
            out.append(("", 0, int(parts[0])))
    return out


def mounts(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for each volume, short or long syntax."""
    out: list[tuple[str, str, bool]] = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"]), bool(v.get("read_only"))))
            continue
        parts = str(v).split(":")
        mode = parts[2].split(",") if len(parts) > 2 else []
        out.append((parts[0], parts[1], "ro" in mode))
    return out


def internal_listener(cfg: dict[str, Any]) -> tuple[str, str, int]:
    """(listener name, host, port) of the listener the broker advertises to other containers."""
    env = environment(service(cfg, "kafka"))
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    internal = [(name, host, port) for name, (host, port) in advertised.items() if host == "kafka"]
    assert len(internal) == 1, f"want one listener advertised as the `kafka` service: {advertised}"
    return internal[0]


def bootstrap_problems(cfg: dict[str, Any]) -> list[str]:
    """Every way the containers' bootstrap address disagrees with the broker's listeners."""
    name, host, port = internal_listener(cfg)
    want = f"{host}:{port}"
    kenv = environment(service(cfg, "kafka"))
    problems = []
    bound = listeners(kenv["KAFKA_LISTENERS"])
    if bound.get(name, ("", -1))[1] != port:
        problems.append(f"{name} advertises port {port} but KAFKA_LISTENERS has {bound.get(name)}")
    if name not in listeners(kenv["KAFKA_ADVERTISED_LISTENERS"]):
        problems.append(f"{name} is not advertised")
    if not re.search(rf"(^|,){name}:PLAINTEXT(,|$)", kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]):
        problems.append(f"{name} has no security protocol")
    for svc in ("worker", "web", "demo"):
        got = environment(service(cfg, svc)).get("FIREPLOT_KAFKA__BOOTSTRAP")
        if got != want:
            problems.append(f"{svc}: FIREPLOT_KAFKA__BOOTSTRAP={got!r}, broker advertises {want}")
    got = flag(argv(service(cfg, "topics").get("command")), "--bootstrap-server")
    if got != want:
        problems.append(f"topics: --bootstrap-server {got!r}, broker advertises {want}")
    return problems


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    if DOCKER_COMPOSE is None:
        pytest.skip("the docker-compose binary is not on PATH; cannot validate the compose file")
    return resolve(COMPOSE)


# ---- the compose file ----------------------------------------------------------------


@needs_compose
class TestComposeFile:
    def test_compose_file_validates_and_defines_every_service(self, cfg: dict[str, Any]) -> None:
        """docker-compose accepts the file, and it defines kafka, topics, worker, detector, web and demo."""
        rv = set(cfg["services"])
        assert rv >= SERVICES

    def test_kafka_is_single_node_kraft_4x(self, cfg: dict[str, Any]) -> None:
        """The broker is apache/kafka 4.x, both broker and controller, voting for itself."""
        kafka = service(cfg, "kafka")
        env = environment(kafka)
        assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"]), kafka["image"]
        roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
        assert roles == {"broker", "controller"}
        voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
        assert voter_id == env["KAFKA_NODE_ID"]
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        assert listeners(env["KAFKA_LISTENERS"])[controller][1] == int(voter.rsplit(":", 1)[1])
        assert controller not in listeners(env["KAFKA_ADVERTISED_LISTENERS"])

    def test_kafka_fits_one_node_and_a_small_heap(self, cfg: dict[str, Any]) -> None:
        """Replication factors are 1 and the cleaner's dedupe buffer is a small part of the heap."""
        env = environment(service(cfg, "kafka"))
        factors = {k: v for k, v in env.items() if k.endswith("_REPLICATION_FACTOR")}
        assert "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR" in factors
        assert "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR" in factors
        assert set(factors.values()) == {"1"}, factors
        heap = re.search(r"-Xmx(\d+)m", env["KAFKA_HEAP_OPTS"])
        assert heap and int(heap.group(1)) <= 1024, env["KAFKA_HEAP_OPTS"]
        dedupe = int(env["KAFKA_LOG_CLEANER_DEDUPE_BUFFER_SIZE"])
        assert 0 < dedupe <= int(heap.group(1)) * 1024 * 1024 // 16

    def test_kafka_keeps_its_data_on_a_named_volume(self, cfg: dict[str, Any]) -> None:
        """The broker's log dir is a named volume, so topics survive `docker compose down`."""
        env = environment(service(cfg, "kafka"))
        data = [src for src, target, _ in mounts(service(cfg, "kafka")) if target == env["KAFKA_LOG_DIRS"]]
        assert data and data[0] in cfg.get("volumes", {}), (data, cfg.get("volumes"))

    def test_kafka_healthcheck_asks_the_broker(self, cfg: dict[str, Any]) -> None:
        """The healthcheck runs kafka-broker-api-versions against a port the broker listens on."""
        hc = service(cfg, "kafka")["healthcheck"]
        test = " ".join(argv(hc["test"]))
        assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
        m = re.search(r"--bootstrap-server[ =](\S+):(\d+)", test)
        assert m, test
        ports = {p for _, p in listeners(environment(service(cfg, "kafka"))["KAFKA_LISTENERS"]).values()}
        assert int(m.group(2)) in ports
        assert hc.get("interval") and hc.get("retries") and hc.get("start_period"), hc

    def test_containers_bootstrap_from_the_internal_listener(self, cfg: dict[str, Any]) -> None:
        """worker, web, demo and topics use the listener advertised as `kafka`, which is bound."""
        rv = bootstrap_problems(cfg)
        assert rv == []

    def test_kafka_host_listener_is_published_on_loopback_only(self, cfg: dict[str, Any]) -> None:
        """Every listener advertised to the host is published, and only on 127.0.0.1."""
        kafka = service(cfg, "kafka")
        name, _, _ = internal_listener(cfg)
        ports = published_ports(kafka)
        assert ports and all(ip == "127.0.0.1" for ip, _, _ in ports), ports
        advertised = listeners(environment(kafka)["KAFKA_ADVERTISED_LISTENERS"])
        for lname, (host, port) in advertised.items():
            if lname != name:
                assert host in {"127.0.0.1", "localhost"}, (lname, host)
                assert ("127.0.0.1", port, port) in ports, (lname, port, ports)

    def test_topics_creates_the_events_topic_once_kafka_is_healthy(self, cfg: dict[str, Any]) -> None:
        """The init job creates fireplot.events with the configured partitions, idempotently."""
        topics = service(cfg, "topics")
        args = argv(topics.get("entrypoint")) + argv(topics.get("command"))
        assert topics["image"] == service(cfg, "kafka")["image"]
        assert any(a.endswith("/kafka-topics.sh") for a in args), args
        assert "--create" in args and "--if-not-exists" in args
        defaults = KafkaConfig()
        assert flag(args, "--topic") == defaults.events_topic == "fireplot.events"
        assert flag(args, "--partitions") == str(defaults.events_partitions)
        assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"

    def test_worker_runs_from_the_fireplot_image_after_topics(self, cfg: dict[str, Any]) -> None:
        """The worker is built from deploy/Dockerfile at the repo root and starts after topics."""
        worker = service(cfg, "worker")
        assert Path(worker["build"]["context"]) == REPO
        assert worker["build"].get("dockerfile") == "deploy/Dockerfile"
        assert argv(worker.get("command")) == ["worker"]
        assert "entrypoint" not in worker
        assert worker["restart"] == "unless-stopped"
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"

    def test_the_main_job_detects_scans_and_maintains_the_store(self, cfg: dict[str, Any]) -> None:
        """Detection follows the store the worker writes (read-write: it keeps <store>/scans), and
        the worker's maintenance (compaction, rollups, retention) is on."""
        detector, worker = service(cfg, "detector"), service(cfg, "worker")
        assert argv(detector.get("command")) == ["detect", "--follow"]
        assert detector.get("image") == worker.get("image")
        assert detector["restart"] == "unless-stopped"
        env = {k: str(v) for k, v in environment(worker).items() if k.startswith("FIREPLOT_")}
        assert config.load(None, env).worker.maintenance_enabled
        store_dir = environment(detector)["FIREPLOT_WORKER__STORE_DIR"]
        assert environment(worker)["FIREPLOT_WORKER__STORE_DIR"] == store_dir
        hits = [
            m for m in mounts(detector) if store_dir.startswith(m[1].rstrip("/") + "/") or store_dir == m[1]
        ]
        assert len(hits) == 1 and hits[0][0] == "store" and hits[0][2] is False, mounts(detector)

    def test_web_serves_on_loopback_5006_from_the_same_image(self, cfg: dict[str, Any]) -> None:
        """web runs `serve` bound to all interfaces inside, published on 127.0.0.1:5006 only."""
        web, worker = service(cfg, "web"), service(cfg, "worker")
        env = environment(web)
        assert argv(web.get("command")) == ["serve"]
        assert web.get("build") == worker.get("build") and web.get("image") == worker.get("image")
        # Inside its container the server must listen beyond loopback; the host side stays
        # on 127.0.0.1 through the published port.
        assert env["FIREPLOT_WEB__ADDRESS"] == "0.0.0.0"  # noqa: S104
        port = WebConfig().port
        ports = published_ports(web)
        assert ("127.0.0.1", port, port) in ports
        assert all(ip == "127.0.0.1" for ip, _, _ in ports), ports
        origins = env["FIREPLOT_WEB__ALLOW_WEBSOCKET_ORIGINS"].split(",")
        assert f"localhost:{port}" in origins

    def test_web_environment_passes_the_servers_exposure_check(self, cfg: dict[str, Any]) -> None:
        """The web service's FIREPLOT_* settings, loaded as the container would, may bind 0.0.0.0."""
        env = {k: str(v) for k, v in environment(service(cfg, "web")).items() if k.startswith("FIREPLOT_")}
        loaded = config.load(None, env)

        auth.check_exposure(loaded.web, auth.Credentials.from_config(loaded.web))  # raises if refused
        assert not auth.is_loopback(loaded.web.address)

    def test_worker_writes_and_web_reads_the_same_store_volume(self, cfg: dict[str, Any]) -> None:
        """One named volume is the store: mounted read-write in worker, read-only in web."""
        found = {}
        for name in ("worker", "web"):
            svc = service(cfg, name)
            store_dir = environment(svc)["FIREPLOT_WORKER__STORE_DIR"]
            hits = [
                m for m in mounts(svc) if store_dir == m[1] or store_dir.startswith(m[1].rstrip("/") + "/")
            ]
            assert len(hits) == 1, (name, store_dir, mounts(svc))
            found[name] = hits[0]
        assert found["worker"][0] == found["web"][0] == "store"
        assert "store" in cfg.get("volumes", {})
        assert found["worker"][2] is False and found["web"][2] is True

    def test_demo_ships_a_demo_day_behind_its_profile(self, cfg: dict[str, Any]) -> None:
        """demo writes a demo day and ships that same file, only with `--profile demo`."""
        demo = service(cfg, "demo")
        assert "demo" in demo.get("profiles", [])
        script = " ".join(argv(demo.get("entrypoint")) + argv(demo.get("command")))
        m = re.search(r"fireplot demo --out (\S+) && fireplot ship (\S+) --site \S+", script)
        assert m and m.group(1) == m.group(2), script
        assert demo.get("build") == service(cfg, "worker").get("build")
        assert demo["depends_on"]["topics"]["condition"] == "service_completed_successfully"


# ---- two sites and a centre ----------------------------------------------------------


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file as {key: value} (comments and blank lines dropped)."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def advertised_as_service(cfg: dict[str, Any], name: str) -> str:
    """host:port of the listener a broker service advertises under its own service name."""
    env = environment(service(cfg, name))
    hits = [f"{h}:{p}" for h, p in listeners(env["KAFKA_ADVERTISED_LISTENERS"]).values() if h == name]
    assert len(hits) == 1, (name, env["KAFKA_ADVERTISED_LISTENERS"])
    return hits[0]


@needs_compose
class TestTwoSitesAndACentre:
    def test_every_site_has_its_kafka_topics_and_shipper_and_a_mirror_runs(self, cfg: dict[str, Any]) -> None:
        """Both sites get a broker, a topic job and a shipper; one MirrorMaker serves them."""
        rv = set(cfg["services"])
        assert rv >= SERVICES | SITE_SERVICES, sorted(SITE_SERVICES - rv)

    def test_site_brokers_are_pinned_kraft_clusters_of_their_own(self, cfg: dict[str, Any]) -> None:
        """Each site broker: the centre's pinned image, KRaft, its own cluster id, data volume and
        healthcheck through the listener it advertises; nothing published on the host."""
        centre = service(cfg, "kafka")
        ids = {environment(centre)["CLUSTER_ID"]}
        for site in SITES:
            kafka = service(cfg, f"kafka-{site}")
            env = environment(kafka)
            assert kafka["image"] == centre["image"]
            assert {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")} == {"broker", "controller"}
            ids.add(env["CLUSTER_ID"])
            assert not kafka.get("ports"), kafka.get("ports")
            data = [src for src, target, _ in mounts(kafka) if target == env["KAFKA_LOG_DIRS"]]
            assert data and data[0] in cfg["volumes"] and data[0] != "kafka-data", data
            test = " ".join(argv(kafka["healthcheck"]["test"]))
            m = re.search(r"--bootstrap-server[ =](\S+):(\d+)", test)
            port = int(advertised_as_service(cfg, f"kafka-{site}").rsplit(":", 1)[1])
            assert m and int(m.group(2)) == port == listeners(env["KAFKA_LISTENERS"])["INTERNAL"][1], test
            assert kafka.get("restart") == "unless-stopped"
        assert len(ids) == 1 + len(SITES), ids

    def test_every_broker_takes_the_largest_producer_request(self, cfg: dict[str, Any]) -> None:
        """message.max.bytes admits pipeline.wire.MAX_REQUEST_BYTES on the centre and each site."""
        from pipeline.wire import MAX_REQUEST_BYTES

        for name in ("kafka", *(f"kafka-{s}" for s in SITES)):
            assert int(environment(service(cfg, name))["KAFKA_MESSAGE_MAX_BYTES"]) >= MAX_REQUEST_BYTES

    def test_site_topic_jobs_wait_for_their_broker(self, cfg: dict[str, Any]) -> None:
        """topics-<site> creates the events and dead-letter topics on its own site's broker."""
        for site in SITES:
            job = service(cfg, f"topics-{site}")
            script = " ".join(argv(job.get("entrypoint")) + argv(job.get("command")))
            assert f"--bootstrap-server {advertised_as_service(cfg, f'kafka-{site}')}" in script
            assert "fireplot.events" in script and "fireplot.dead-letters" in script
            assert "--if-not-exists" in script
            assert job["depends_on"][f"kafka-{site}"]["condition"] == "service_healthy"

    def test_site_shippers_publish_to_their_site_and_keep_their_state(self, cfg: dict[str, Any]) -> None:
        """A site's shipper stamps its site, talks to its own broker only, and keeps its read
        positions on a named volume (a restart resumes, it does not ship again)."""
        worker_build = service(cfg, "worker").get("build")
        for site in SITES:
            shipper = service(cfg, f"shipper-{site}")
            env = environment(shipper)
            assert env["FIREPLOT_KAFKA__BOOTSTRAP"] == advertised_as_service(cfg, f"kafka-{site}")
            assert env["FIREPLOT_SHIPPER__SITE"] == site
            script = " ".join(argv(shipper.get("entrypoint")) + argv(shipper.get("command")))
            assert "fireplot ship" in script and "--follow" in script and "--site" in script
            assert shipper.get("build") == worker_build
            home = [src for src, target, _ in mounts(shipper) if target == "/home/fireplot"]
            assert home and home[0] in cfg["volumes"], mounts(shipper)
            assert shipper["depends_on"][f"topics-{site}"]["condition"] == "service_completed_successfully"

    def test_mirror_runs_mirrormaker_2_with_the_mounted_properties(self, cfg: dict[str, Any]) -> None:
        """mirror runs connect-mirror-maker.sh from the brokers' image on deploy/mm2.properties,
        once every broker is healthy and the site topics exist."""
        mirror = service(cfg, "mirror")
        assert mirror["image"] == service(cfg, "kafka")["image"]
        args = argv(mirror.get("entrypoint")) + argv(mirror.get("command"))
        assert args[0] == "/opt/kafka/bin/connect-mirror-maker.sh", args
        mounted = {target: Path(src) for src, target, ro in mounts(mirror) if ro}
        assert mounted.get(args[1]) == MM2, (args, mounts(mirror))
        deps = mirror["depends_on"]
        for name in ("kafka", *(f"kafka-{s}" for s in SITES)):
            assert deps[name]["condition"] == "service_healthy"
        for site in SITES:
            assert deps[f"topics-{site}"]["condition"] == "service_completed_successfully"

    def test_mirror_config_names_both_sites_and_the_centre(self, cfg: dict[str, Any]) -> None:
        """mm2.properties: both sites flow to the centre (never back), each from the address its
        broker advertises, copying the events and dead-letter topics."""
        props = read_properties(MM2)
        clusters = [c.strip() for c in props["clusters"].split(",")]
        assert sorted(clusters) == sorted([*SITES, "centre"])
        assert props["centre.bootstrap.servers"] == advertised_as_service(cfg, "kafka")
        for site in SITES:
            assert props[f"{site}.bootstrap.servers"] == advertised_as_service(cfg, f"kafka-{site}")
            assert props[f"{site}->centre.enabled"] == "true"
            assert props[f"centre->{site}.enabled"] == "false"
            topics = re.compile(props[f"{site}->centre.topics"])
            assert topics.fullmatch("fireplot.events") and topics.fullmatch("fireplot.dead-letters")
            assert not topics.fullmatch("fireplot.events.other")
        factors = {k: v for k, v in props.items() if k.endswith("replication.factor")}
        assert len(factors) >= 5 and set(factors.values()) == {"1"}, factors

    def test_mirror_config_matches_what_fireplot_kafka_mirror_writes(self) -> None:
        """The file holds the settings pipeline.broker.mirror generates for the same clusters."""
        from pipeline.broker.mirror import Site, mm2_properties

        props = read_properties(MM2)
        sites = [Site(s, read_properties(MM2)[f"{s}.bootstrap.servers"]) for s in SITES]
        want = mm2_properties(
            sites,
            props["centre.bootstrap.servers"],
            ["fireplot.events", "fireplot.raw", "fireplot.dead-letters"],
        )
        rv = {k: props.get(k) for k in want}
        assert rv == want

    def test_worker_archives_the_mirrored_site_topics(self, cfg: dict[str, Any]) -> None:
        """The worker's topic pattern takes <site>.fireplot.events for every site, nothing else."""
        from pipeline.broker.mirror import remote_topic

        env = environment(service(cfg, "worker"))
        pattern = re.compile(env["FIREPLOT_KAFKA__EVENTS_TOPIC_PATTERN"])
        for site in SITES:
            assert pattern.fullmatch(remote_topic(site, "fireplot.events")), site
            assert not pattern.fullmatch(remote_topic(site, "fireplot.dead-letters"))
        assert not pattern.fullmatch("fireplot.events")  # the centre's own topic is events_topic
        assert not pattern.fullmatch("a.b.fireplot.events")

    def test_every_service_waiting_on_a_broker_waits_for_its_health(self, cfg: dict[str, Any]) -> None:
        """depends_on a broker always means service_healthy, and every broker has a healthcheck."""
        brokers = {
            n
            for n, svc in cfg["services"].items()
            if svc.get("image", "").startswith("apache/kafka") and "KAFKA_PROCESS_ROLES" in environment(svc)
        }
        assert brokers == {"kafka", *(f"kafka-{s}" for s in SITES)}
        for name in brokers:
            assert service(cfg, name).get("healthcheck", {}).get("test"), name
        for name, svc in cfg["services"].items():
            for dep, how in (svc.get("depends_on") or {}).items():
                if dep in brokers:
                    assert how["condition"] == "service_healthy", (name, dep)


@needs_compose
class TestTlsOverride:
    def test_override_adds_a_sasl_ssl_listener_with_scram_and_a_keystore(self) -> None:
        """With the TLS override the centre also listens SASL_SSL (SCRAM-SHA-512), keystore mounted,
        published for remote shippers; the PLAINTEXT listeners stay as they were."""
        cfg = resolve(COMPOSE, (TLS_OVERRIDE,), TLS_ENV)
        kafka = service(cfg, "kafka")
        env = environment(kafka)
        proto = dict(e.split(":", 1) for e in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        secure = [n for n, p in proto.items() if p == "SASL_SSL"]
        assert len(secure) == 1
        name = secure[0]
        port = listeners(env["KAFKA_LISTENERS"])[name][1]
        assert name in listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        assert any(pub == port == target for _, pub, target in published_ports(kafka))
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        prefix = f"KAFKA_LISTENER_NAME_{name}_"
        assert "ScramLoginModule required" in env[f"{prefix}SCRAM___SHA___512_SASL_JAAS_CONFIG"]
        keystore = env[f"{prefix}SSL_KEYSTORE_LOCATION"]
        assert any(keystore.startswith(t.rstrip("/") + "/") and ro for _, t, ro in mounts(kafka)), mounts(
            kafka
        )
        assert env[f"{prefix}SSL_KEYSTORE_PASSWORD"] == TLS_ENV["FIREPLOT_TLS_KEYSTORE_PASSWORD"]
        # the base file's listeners are all still there, and the internal one unchanged
        assert bootstrap_problems(cfg) == []
        scram = service(cfg, "scram-users")
        args = argv(scram.get("command"))
        assert flag(args, "--bootstrap-server") == advertised_as_service(cfg, "kafka")
        assert f"SCRAM-SHA-512=[password={TLS_ENV['FIREPLOT_SCRAM_PASSWORD']}]" in args
        assert scram["depends_on"]["kafka"]["condition"] == "service_healthy"

    def test_override_without_passwords_is_refused(self) -> None:
        """Without the keystore password `config` fails naming the variable, rather than
        starting a broker with an empty password."""
        rv = compose_config(COMPOSE, overrides=(TLS_OVERRIDE,), env={"FIREPLOT_SCRAM_PASSWORD": "x"})
        assert rv.returncode != 0
        assert "FIREPLOT_TLS_KEYSTORE_PASSWORD" in rv.stderr

    def test_keys_for_the_override_are_kept_out_of_git(self) -> None:
        """deploy/tls/ ignores everything but its own .gitignore."""
        lines = (REPO / "deploy" / "tls" / ".gitignore").read_text(encoding="utf-8").split()
        assert "*" in lines and "!.gitignore" in lines


# ---- the validator validates ---------------------------------------------------------


@needs_compose
class TestValidatorRejects:
    def mutate(self, tmp_path: Path, old: str, new: str) -> Path:
        text = COMPOSE.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in docker-compose.yml; update this test"
        path = tmp_path / "docker-compose.yml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    def test_misspelt_service_key_is_rejected(self, tmp_path: Path) -> None:
        """A typo'd key in a service makes `docker-compose config` exit non-zero."""
        path = self.mutate(tmp_path, "    restart: unless-stopped", "    restrat: unless-stopped")
        rv = compose_config(path)
        assert rv.returncode != 0
        assert "restrat" in rv.stderr

    def test_invalid_yaml_is_rejected(self, tmp_path: Path) -> None:
        """A file that is not YAML makes `docker-compose config` exit non-zero."""
        path = self.mutate(tmp_path, "services:", "services: [unclosed")
        rv = compose_config(path)
        assert rv.returncode != 0

    def test_dependency_on_an_undefined_service_is_rejected(self, tmp_path: Path) -> None:
        """depends_on naming a service that does not exist makes `config` exit non-zero."""
        old = "      topics:\n        condition"
        path = self.mutate(tmp_path, old, old.replace("topics", "topcs"))
        rv = compose_config(path)
        assert rv.returncode != 0
        assert "topcs" in rv.stderr

    def test_bootstrap_check_catches_a_moved_internal_listener(self, tmp_path: Path) -> None:
        """Advertising the internal listener on another port than clients use is reported."""
        path = self.mutate(tmp_path, "INTERNAL://kafka:19092", "INTERNAL://kafka:29092")
        rv = bootstrap_problems(resolve(path))
        assert any("19092" in p or "29092" in p for p in rv) and len(rv) >= 4, rv


# ---- the image -----------------------------------------------------------------------


class TestDockerfile:
    def test_base_images_are_pinned_python_311_slim_and_rust_slim(self) -> None:
        """Every stage starts from python:3.11.<patch>-slim (or, to build the scanner, rust:<x.y.z>-slim)."""
        instructions = dockerfile_instructions()
        args = {}
        for word, rest in instructions:
            if word == "ARG" and "=" in rest:
                key, _, value = rest.partition("=")
                args[key] = value.strip("\"'")
        stages = [rest.split()[0] for word, rest in instructions if word == "FROM"]
        assert stages
        for image in stages:
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
            pinned = r"(python:3\.11|rust:\d+\.\d+)\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?"
            assert re.fullmatch(pinned, image), image
        # Python runs the image: the last stage is Python's.
        assert re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), stages[-1]).startswith("python:")

    def test_the_image_carries_the_native_netfilter_scanner(self) -> None:
        """A Rust stage builds the scanner; the build stage puts it beside its loader and proves it loads."""
        instructions = dockerfile_instructions()
        native = [rest for word, rest in instructions if word == "FROM" and rest.endswith(" AS native")]
        assert native, "no stage named native"
        runs = " ".join(rest for word, rest in instructions if word == "RUN")
        assert "cargo build --release --locked" in runs
        copies = [rest for word, rest in instructions if word == "COPY" and rest.startswith("--from=native")]
        assert copies and "libfireplot_netfilter.so" in copies[0], copies
        assert "FIREPLOT_NETFILTER_ENGINE=native" in runs and 'engine() == "native"' in runs

    def test_installs_every_extra(self) -> None:
        """The image installs the package with the `all` extra (worker and web)."""
        runs = [rest for word, rest in dockerfile_instructions() if word == "RUN"]
        assert any(re.search(r"pip3? install .*[\"']?\.\[all\][\"']?", r) for r in runs), runs

    def test_runs_as_non_root_with_fireplot_entrypoint(self) -> None:
        """The final stage drops root and its entrypoint is the fireplot command."""
        stage = final_stage()
        users = [rest.split(":")[0] for word, rest in stage if word == "USER"]
        assert users and users[-1] not in {"root", "0"}, users
        entrypoints = [rest for word, rest in stage if word == "ENTRYPOINT"]
        assert entrypoints and json.loads(entrypoints[-1]) == ["fireplot"], entrypoints

    @needs_compose
    def test_store_mount_point_belongs_to_the_image_user(self, cfg: dict[str, Any]) -> None:
        """The store mount point is made and chowned in the image, so a new volume is writable."""
        target = next(t for src, t, _ in mounts(service(cfg, "worker")) if src == "store")
        runs = " ".join(rest for word, rest in final_stage() if word == "RUN")
        assert re.search(rf"mkdir[^&;]*\s{re.escape(target)}(\s|$)", runs), runs
        assert "chown" in runs

    def test_dockerignore_keeps_local_state_out_of_the_context(self) -> None:
        """The build context leaves out var/, virtualenvs, .git and caches."""
        patterns = {
            line.strip().strip("/")
            for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        }
        assert {"var", ".venv", ".git"} <= patterns, patterns
        assert any("__pycache__" in p for p in patterns), patterns
        assert {"pyproject.toml", "pipeline", "fireplot"}.isdisjoint(patterns)
