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

SERVICES = {"kafka", "topics", "worker", "web", "demo"}


# ---- helpers -------------------------------------------------------------------------


def compose_config(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` on one file, isolated from the caller's COMPOSE_* settings."""
    assert DOCKER_COMPOSE is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(path), "--project-directory", str(REPO), "config", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def resolve(path: Path) -> dict[str, Any]:
    proc = compose_config(path)
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
        """docker-compose accepts the file, and it defines kafka, topics, worker, web and demo."""
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
        data = [
            src
            for src, target, _ in mounts(service(cfg, "kafka"))
            if target == env["KAFKA_LOG_DIRS"]
        ]
        assert data and data[0] in cfg.get("volumes", {}), (data, cfg.get("volumes"))

    def test_kafka_healthcheck_asks_the_broker(self, cfg: dict[str, Any]) -> None:
        """The healthcheck runs kafka-broker-api-versions against a port the broker listens on."""
        hc = service(cfg, "kafka")["healthcheck"]
        test = " ".join(argv(hc["test"]))
        assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
        m = re.search(r"--bootstrap-server[ =](\S+):(\d+)", test)
        assert m, test
        ports = {
            p for _, p in listeners(environment(service(cfg, "kafka"))["KAFKA_LISTENERS"]).values()
        }
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

    def test_topics_creates_the_events_topic_once_kafka_is_healthy(
        self, cfg: dict[str, Any]
    ) -> None:
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

    def test_worker_writes_and_web_reads_the_same_store_volume(self, cfg: dict[str, Any]) -> None:
        """One named volume is the store: mounted read-write in worker, read-only in web."""
        found = {}
        for name in ("worker", "web"):
            svc = service(cfg, name)
            store_dir = environment(svc)["FIREPLOT_WORKER__STORE_DIR"]
            hits = [
                m
                for m in mounts(svc)
                if store_dir == m[1] or store_dir.startswith(m[1].rstrip("/") + "/")
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
    def test_base_image_is_a_pinned_python_311_slim(self) -> None:
        """Every stage starts from python:3.11.<patch>-slim, never a floating tag."""
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
            pinned = r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?"
            assert re.fullmatch(pinned, image), image

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
