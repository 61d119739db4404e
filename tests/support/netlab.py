"""A real kernel firewall in two network namespaces, scanned by nmap, logged by ulogd2.

::

    scanner netns                         firewall netns
    fp-scan-<pid>-<rand>                  fp-fw-<pid>-<rand>   (own UTS ns: hostname = netns name)
    fp-scan0 198.51.100.1/30  <--veth-->  fp-fw0 198.51.100.2/30
             2001:db8::1/64                      2001:db8::2/64
    nmap -sS / -sU / -6 -sS               nftables inet table: TCP/UDP to the fw addresses
                                          (+ optional sweep addresses: N more /32s and /128s
                                          inside a test-chosen /24 and /64, routed via fp-fw0)
                                            -> log group 42 (+ 43) -> drop
                                          ulogd2: NFLOG 42 -> ... -> LOGEMU  (text, the format
                                                  NFLOG 43 -> ... -> JSON     under test / oracle)

``NetLab`` is a context manager; everything it creates (namespaces, the veth pair,
the ruleset, ulogd2) is removed on exit, also when the body raises. Needs root and
``ip``, ``nft``, ``ulogd``, ``nmap`` and ``unshare``; ``LabUnavailable`` (turned into
``pytest.skip`` by ``skip_unless_available``/the tests) says what is missing.

Network safety: the namespaces have no link other than the veth pair between them
and no routes beyond the two connected prefixes (plus, with ``sweep_hosts``, the two
sweep prefixes via the firewall's veth address), and ``NetLab.nmap`` refuses any
target but the firewall namespace's own addresses (and checks every packet nmap
reports sending). Nothing can reach a real network.

How exact the counts are (measured on Debian 12, kernel 6.x, nmap 7.93, ulogd 2.0.8):
with ``--max-retries 0`` nmap sends each TCP SYN probe exactly once; a UDP port
gets one probe per payload nmap has for it (53 and 123 get 2, 5353 gets 4, ...).
With ``--send-ip`` nmap leaves ARP/ND to the kernel, so its "Raw packets sent"
equals its ``--packet-trace`` SENT lines, and each of those is exactly one
ulogd2 line. Without ``--send-ip`` the count includes nmap's own ARP request or
neighbour solicitation. Without ``--min-rate`` a 1024-port scan of filtered
ports takes ~26 s (nmap waits out its RTT timeout per small window); with
``--min-rate 5000`` it takes ~0.4 s and loses nothing.

Run ``python -m tests.support.netlab --capture DIR`` to record a small golden capture
(LOGEMU text, ulogd JSON, nmap commands) for the parser tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

# ---- the lab's fixed choices -------------------------------------------------------------

SCAN_V4 = "198.51.100.1"  # TEST-NET-2 (RFC 5737): never routed on the Internet
FW_V4 = "198.51.100.2"
V4_PREFIXLEN = 30
SCAN_V6 = "2001:db8::1"  # documentation prefix (RFC 3849)
FW_V6 = "2001:db8::2"
V6_PREFIXLEN = 64
SCAN_IF = "fp-scan0"
FW_IF = "fp-fw0"
LOG_PREFIX = "fp-lab DROP: "  # with a space inside and after, as real prefixes are
NFLOG_GROUP = 42  # -> LOGEMU text
NFLOG_GROUP_JSON = 43  # -> JSON (only when the JSON output plugin is installed)

NMAP_BASE_ARGS: tuple[str, ...] = (
    "-n",  # no DNS
    "-Pn",  # no host discovery: the target answers nothing we allow
    "--send-ip",  # raw IP sockets: kernel ARP/ND, so every packet nmap counts is a probe
    "--max-retries",
    "0",  # one probe per port (per payload for UDP)
    "-T5",
    "--min-rate",
    "5000",  # else filtered ports make nmap crawl (26 s for 1024 ports)
    "--host-timeout",
    "60s",
    "-v",  # prints "Raw packets sent: N"
    "--packet-trace",  # prints every probe: the oracle for the log
)

PLUGIN_DIR_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/ulogd",
    "/usr/lib/aarch64-linux-gnu/ulogd",
    "/usr/lib64/ulogd",
    "/usr/lib/ulogd",
    "/usr/local/lib/ulogd",
)
TEXT_PLUGINS = ("NFLOG", "BASE", "IFINDEX", "IP2STR", "PRINTPKT", "LOGEMU")
PLUGIN_FILES = {
    "NFLOG": "ulogd_inppkt_NFLOG.so",
    "BASE": "ulogd_raw2packet_BASE.so",
    "IFINDEX": "ulogd_filter_IFINDEX.so",
    "IP2STR": "ulogd_filter_IP2STR.so",
    "HWHDR": "ulogd_filter_HWHDR.so",
    "PRINTPKT": "ulogd_filter_PRINTPKT.so",
    "LOGEMU": "ulogd_output_LOGEMU.so",
    "JSON": "ulogd_output_JSON.so",
}
REQUIRED_TOOLS = ("ip", "nft", "ulogd", "nmap", "unshare")


class LabUnavailable(Exception):
    """This machine cannot host the lab (not root, tool missing, no netns support)."""


class LabError(RuntimeError):
    """The lab was possible but something in it failed: a real test failure."""


# ---- preflight ---------------------------------------------------------------------------


def ulogd_plugin_dir() -> Path | None:
    env = os.environ.get("FIREPLOT_ULOGD_PLUGIN_DIR")
    candidates = [env] if env else []
    candidates += list(PLUGIN_DIR_CANDIDATES)
    candidates += [str(p) for p in sorted(Path("/usr/lib").glob("*-linux-gnu*/ulogd"))]
    for c in candidates:
        if c and all((Path(c) / PLUGIN_FILES[p]).is_file() for p in TEXT_PLUGINS):
            return Path(c)
    return None


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None if it can (netns creation is tried later)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root: creates network namespaces, nftables rules and runs ulogd2/nmap"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return (
            f"missing tools: {', '.join(missing)} "
            "(Debian: apt-get install iproute2 nftables ulogd2 nmap util-linux)"
        )
    if ulogd_plugin_dir() is None:
        return (
            "ulogd2 plugins (NFLOG, BASE, IFINDEX, IP2STR, PRINTPKT, LOGEMU) not found in "
            f"{', '.join(PLUGIN_DIR_CANDIDATES)}; set FIREPLOT_ULOGD_PLUGIN_DIR"
        )
    return None


def skip_unless_available() -> None:
    """pytest.skip with the reason when the lab cannot run on this machine."""
    reason = unavailable_reason()
    if reason:
        import pytest

        pytest.skip(f"netlab: {reason}")


# ---- nmap output ---------------------------------------------------------------------------

# SENT (0.0314s) TCP 198.51.100.1:61332 > 198.51.100.2:22 S ttl=49 id=9432 iplen=44  seq=…
# SENT (0.0560s) UDP 198.51.100.1:38898 > 198.51.100.2:53 ttl=48 id=46630 iplen=40
# SENT (0.0326s) TCP 2001:db8::1:46052 > 2001:db8::2:80 S hopl=255 flow=0 payloadlen=24 seq=…
_SENT_RE = re.compile(
    r"^SENT \((?P<t>[\d.]+)s\) (?P<proto>TCP|UDP) (?P<src>\S+):(?P<sport>\d+) > "
    r"(?P<dst>\S+):(?P<dport>\d+) (?P<rest>.*)$"
)
_RAW_SENT_RE = re.compile(r"Raw packets sent: (\d+) ")


@dataclass(frozen=True)
class Probe:
    """One packet nmap reports having sent (from --packet-trace)."""

    proto: str  # "TCP" | "UDP"
    ip_version: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    tcp_flags: str | None  # nmap's notation: "S" for SYN
    ttl: int | None  # TTL (v4) or hop limit (v6)


@dataclass(frozen=True)
class NmapRun:
    argv: tuple[str, ...]  # the nmap command line (without the `ip netns exec` wrapper)
    probes: tuple[Probe, ...]
    raw_packets_sent: int | None
    elapsed_s: float
    stdout: str


def parse_packet_trace(stdout: str) -> tuple[list[Probe], list[str]]:
    """Probes from nmap's --packet-trace output, plus SENT lines that are not TCP/UDP probes."""
    probes: list[Probe] = []
    other: list[str] = []
    for line in stdout.splitlines():
        if not line.startswith("SENT "):
            continue
        m = _SENT_RE.match(line)
        if not m:
            other.append(line)
            continue
        rest = m["rest"].split()
        kv = dict(tok.split("=", 1) for tok in rest if "=" in tok)
        ttl = kv.get("ttl", kv.get("hopl"))
        flags = rest[0] if m["proto"] == "TCP" and rest and "=" not in rest[0] else None
        probes.append(
            Probe(
                proto=m["proto"],
                ip_version=6 if ":" in m["dst"] else 4,
                src_ip=m["src"],
                src_port=int(m["sport"]),
                dst_ip=m["dst"],
                dst_port=int(m["dport"]),
                tcp_flags=flags,
                ttl=int(ttl) if ttl is not None else None,
            )
        )
    return probes, other


# ---- the lab ---------------------------------------------------------------------------------


def _run(
    argv: Sequence[str], *, timeout_s: float = 30, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


_SETHOSTNAME_EXEC = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"
)


@dataclass
class NetLab:
    """Two namespaces, a veth pair, an nftables firewall that logs to ulogd2. Context-managed."""

    workdir: Path
    json_output: bool | None = None  # None: when the JSON plugin is installed
    hostname: str = ""  # the firewall's name in the log lines; default: the netns name
    # Extra target addresses on the firewall's veth for horizontal sweeps: sweep_hosts
    # addresses from the start of each prefix (host 1, 2, ...), logged like the others.
    sweep_hosts: int = 0
    sweep_v4_net: str = "10.89.64.0/24"  # private (RFC 1918), only ever inside the lab
    sweep_v6_net: str = "fd00:f1e:7e57::/64"  # unique local (RFC 4193), only inside the lab
    ulogd_start_timeout_s: float = 10.0
    run_id: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(3)}")

    scan_ns: str = field(init=False)
    fw_ns: str = field(init=False)
    logemu_path: Path = field(init=False)
    json_path: Path | None = field(init=False, default=None)
    ulogd_log_path: Path = field(init=False)
    ruleset: str = field(init=False, default="")
    _created_ns: list[str] = field(init=False, default_factory=list)
    _ulogd: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.scan_ns = f"fp-scan-{self.run_id}"
        self.fw_ns = f"fp-fw-{self.run_id}"
        self.hostname = self.hostname or self.fw_ns
        self.logemu_path = self.workdir / "ulogd-logemu.log"
        self.ulogd_log_path = self.workdir / "ulogd-daemon.log"

    # -- context management --

    def __enter__(self) -> NetLab:
        reason = unavailable_reason()
        if reason:
            raise LabUnavailable(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._create_namespaces()
            self._wire()
            self._add_sweep_addresses()
            self._load_ruleset()
            self._start_ulogd()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop ulogd2 and delete both namespaces (veth and ruleset go with them). Idempotent."""
        errors: list[str] = []
        if self._ulogd is not None:
            proc, self._ulogd = self._ulogd, None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for ns in reversed(self._created_ns):
            # Any process we started in ns is gone by now; deleting the name frees the netns.
            proc_ = _run(["ip", "netns", "delete", ns], check=False)
            if proc_.returncode != 0 and ns in self._list_netns():
                errors.append(f"ip netns delete {ns}: {proc_.stderr.strip()}")
        self._created_ns.clear()
        if errors:
            raise LabError("; ".join(errors))

    @staticmethod
    def _list_netns() -> set[str]:
        out = _run(["ip", "netns", "list"], check=False).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    # -- setup steps --

    def _create_namespaces(self) -> None:
        for ns in (self.scan_ns, self.fw_ns):
            proc = _run(["ip", "netns", "add", ns], check=False)
            if proc.returncode != 0:
                raise LabUnavailable(f"ip netns add {ns} failed: {proc.stderr.strip()}")
            self._created_ns.append(ns)

    def _ip(self, ns: str, *args: str) -> None:
        _run(["ip", "-n", ns, *args])

    def _wire(self) -> None:
        # Created inside the scanner netns with the peer placed straight into the firewall
        # netns: the pair never exists in the caller's namespace, so names cannot collide.
        self._ip(
            self.scan_ns, "link", "add", SCAN_IF, "type", "veth", "peer", "name", FW_IF, "netns", self.fw_ns
        )
        for ns, ifname, v4, v6 in (
            (self.scan_ns, SCAN_IF, SCAN_V4, SCAN_V6),
            (self.fw_ns, FW_IF, FW_V4, FW_V6),
        ):
            self._ip(ns, "addr", "add", f"{v4}/{V4_PREFIXLEN}", "dev", ifname)
            self._ip(ns, "-6", "addr", "add", f"{v6}/{V6_PREFIXLEN}", "dev", ifname, "nodad")
            self._ip(ns, "link", "set", "lo", "up")
            self._ip(ns, "link", "set", ifname, "up")

    def sweep_addresses(self, version: int) -> tuple[str, ...]:
        """The firewall's extra addresses of one family (empty without sweep_hosts)."""
        net = ipaddress.ip_network(self.sweep_v4_net if version == 4 else self.sweep_v6_net)
        if self.sweep_hosts >= net.num_addresses - 1:
            raise ValueError(f"{self.sweep_hosts} sweep hosts do not fit in {net}")
        return tuple(str(net.network_address + i) for i in range(1, self.sweep_hosts + 1))

    def _add_sweep_addresses(self) -> None:
        if not self.sweep_hosts:
            return
        for v, gw, plen in ((4, FW_V4, 32), (6, FW_V6, 128)):
            fam = "-4" if v == 4 else "-6"
            for addr in self.sweep_addresses(v):
                self._ip(
                    self.fw_ns,
                    fam,
                    "addr",
                    "add",
                    f"{addr}/{plen}",
                    "dev",
                    FW_IF,
                    *(("nodad",) if v == 6 else ()),
                )
            # The scanner reaches the sweep prefix only through the firewall, over the veth.
            net = self.sweep_v4_net if v == 4 else self.sweep_v6_net
            self._ip(self.scan_ns, fam, "route", "add", net, "via", gw, "dev", SCAN_IF)

    def _log_statements(self) -> str:
        groups = [NFLOG_GROUP] + ([NFLOG_GROUP_JSON] if self.json_path else [])
        return " ".join(f'log prefix "{LOG_PREFIX}" group {g}' for g in groups)

    def _load_ruleset(self) -> None:
        plugin_dir = ulogd_plugin_dir()
        want_json = self.json_output
        has_json = plugin_dir is not None and (plugin_dir / PLUGIN_FILES["JSON"]).is_file()
        if want_json and not has_json:
            raise LabUnavailable("ulogd2 JSON output plugin not installed (Debian: ulogd2-json)")
        if want_json or (want_json is None and has_json):
            self.json_path = self.workdir / "ulogd.json"
        log = self._log_statements()
        sweep = ""
        if self.sweep_hosts:
            sweep = (
                f"        ip daddr {self.sweep_v4_net} meta l4proto {{ tcp, udp }} {log} drop\n"
                f"        ip6 daddr {self.sweep_v6_net} meta l4proto {{ tcp, udp }} {log} drop\n"
            )
        # Only TCP/UDP addressed to the firewall's own addresses is logged: neighbour
        # discovery, MLD, router solicitations and link-local chatter never reach the log.
        self.ruleset = f"""\
table inet fireplot_lab {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iif "lo" accept
        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit,
                      nd-router-advert, nd-redirect }} accept
        ip daddr {FW_V4} meta l4proto {{ tcp, udp }} {log} drop
        ip6 daddr {FW_V6} meta l4proto {{ tcp, udp }} {log} drop
{sweep}        meta l4proto {{ tcp, udp }} drop
    }}
}}
"""
        path = self.workdir / "ruleset.nft"
        path.write_text(self.ruleset)
        _run(["ip", "netns", "exec", self.fw_ns, "nft", "-f", str(path)])

    def _ulogd_config(self, plugin_dir: Path) -> str:
        plugins = list(TEXT_PLUGINS) + (["HWHDR", "JSON"] if self.json_path else [])
        lines = [
            "[global]",
            f'logfile="{self.ulogd_log_path}"',
            "loglevel=3",  # info: includes "initialization finished", our readiness signal
            *(f'plugin="{plugin_dir / PLUGIN_FILES[p]}"' for p in plugins),
            "stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU",
        ]
        if self.json_path:
            lines.append("stack=log2:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON")
        nflog = [
            # The kernel batches NFLOG messages (default: 100 packets or 1 s); 1 packet and
            # 10 ms make each logged packet reach ulogd at once. A big socket buffer keeps a
            # 5000 pkt/s burst from overflowing it (ENOBUFS = lost log lines).
            "netlink_qthreshold=1",
            "netlink_qtimeout=1",
            "netlink_socket_buffer_size=1048576",
            "netlink_socket_buffer_maxsize=8388608",
        ]
        lines += ["", "[log1]", f"group={NFLOG_GROUP}", *nflog]
        # sync=1: fflush after every line, so the file is complete as soon as ulogd saw the packet.
        lines += ["", "[emu1]", f'file="{self.logemu_path}"', "sync=1"]
        if self.json_path:
            lines += ["", "[log2]", f"group={NFLOG_GROUP_JSON}", *nflog]
            lines += ["", "[json1]", f'file="{self.json_path}"', "sync=1"]
        return "\n".join(lines) + "\n"

    def _start_ulogd(self) -> None:
        plugin_dir = ulogd_plugin_dir()
        assert plugin_dir is not None
        conf = self.workdir / "ulogd.conf"
        conf.write_text(self._ulogd_config(plugin_dir))
        ulogd = shutil.which("ulogd")
        assert ulogd is not None
        out = (self.workdir / "ulogd-stdout.log").open("ab")
        # ip netns exec, unshare (no --fork) and the trampoline all exec, so the Popen pid is
        # ulogd's. Its own UTS namespace lets LOGEMU write the firewall's name as the syslog
        # host; TZ=UTC makes its local-time syslog stamps UTC.
        env = {**os.environ, "TZ": "UTC"}
        self._ulogd = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.fw_ns,
                "unshare",
                "--uts",
                "--",
                sys.executable,
                "-c",
                _SETHOSTNAME_EXEC,
                self.hostname,
                ulogd,
                "-c",
                str(conf),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        out.close()
        deadline = time.monotonic() + self.ulogd_start_timeout_s
        while time.monotonic() < deadline:
            if "initialization finished" in self.ulogd_log():
                return
            if self._ulogd.poll() is not None:
                raise LabError(f"ulogd exited {self._ulogd.returncode}:\n{self.ulogd_log()[-3000:]}")
            time.sleep(0.02)
        raise LabError(f"ulogd not ready after {self.ulogd_start_timeout_s} s:\n{self.ulogd_log()[-3000:]}")

    # -- use --

    def ulogd_log(self) -> str:
        try:
            return self.ulogd_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def targets(self) -> frozenset[str]:
        """Every address nmap may be pointed at: the firewall's own, in canonical form."""
        own = [FW_V4, FW_V6, *self.sweep_addresses(4), *self.sweep_addresses(6)]
        return frozenset(str(ipaddress.ip_address(a)) for a in own)

    def fw_addresses(self) -> dict[int, str]:
        return {4: FW_V4, 6: FW_V6}

    def scan_addresses(self) -> dict[int, str]:
        return {4: SCAN_V4, 6: SCAN_V6}

    def _assert_isolated(self) -> None:
        """The scanner netns must hold only lo and our veth, and routes only to the lab prefix."""
        links = _run(["ip", "-n", self.scan_ns, "-o", "link", "show"]).stdout
        names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
        if names != {"lo", SCAN_IF}:
            raise LabError(f"scanner netns has unexpected links {sorted(names)}; refusing to scan")
        for fam in ("-4", "-6"):
            routes = _run(["ip", "-n", self.scan_ns, fam, "route", "show", "table", "all"]).stdout
            for r in routes.splitlines():
                if r.startswith("default"):
                    raise LabError(f"scanner netns has a default route ({r}); refusing to scan")

    def nmap(self, *args: str, target: str | Sequence[str], timeout_s: float = 60) -> NmapRun:
        """Run nmap from the scanner netns at one or more of the firewall's addresses."""
        targets = (target,) if isinstance(target, str) else tuple(target)
        allowed = self.targets()
        for t in targets:
            try:
                canonical = str(ipaddress.ip_address(t))
            except ValueError:
                canonical = ""
            if canonical not in allowed:
                raise ValueError(f"refusing to scan {t!r}: only the lab's firewall addresses")
        if not targets:
            raise ValueError("no target")
        _check_nmap_args(args)
        self._assert_isolated()
        argv = ("nmap", *NMAP_BASE_ARGS, *args, *targets)
        t0 = time.monotonic()
        proc = _run(["ip", "netns", "exec", self.scan_ns, *argv], timeout_s=timeout_s)
        elapsed = time.monotonic() - t0
        probes, other = parse_packet_trace(proc.stdout)
        if other:
            raise LabError(f"nmap sent packets other than TCP/UDP probes: {other[:5]}")
        wanted = {str(ipaddress.ip_address(t)) for t in targets}
        strays = [p for p in probes if str(ipaddress.ip_address(p.dst_ip)) not in wanted]
        if strays:
            raise LabError(f"nmap sent probes to other addresses: {strays[:5]}")
        m = _RAW_SENT_RE.search(proc.stdout)
        return NmapRun(
            argv=argv,
            probes=tuple(probes),
            raw_packets_sent=int(m[1]) if m else None,
            elapsed_s=elapsed,
            stdout=proc.stdout,
        )

    def wait_for_lines(self, n: int, timeout_s: float = 10.0, settle_s: float = 0.3) -> None:
        """Wait until the LOGEMU (and JSON) files hold n complete lines, then settle_s longer."""
        paths = [self.logemu_path] + ([self.json_path] if self.json_path else [])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(_count_lines(p) >= n for p in paths):
                time.sleep(settle_s)  # so that extra lines, if any, show up too
                return
            if self._ulogd is None or self._ulogd.poll() is not None:
                raise LabError(f"ulogd is not running:\n{self.ulogd_log()[-3000:]}")
            time.sleep(0.02)
        counts = {p.name: _count_lines(p) for p in paths}
        raise LabError(
            f"expected {n} log lines within {timeout_s} s, have {counts}\n{self.ulogd_log()[-2000:]}"
        )


# Every nmap argument that is not an option must be the value of the option before it, or
# nmap would take it as one more target ("5000" alone is the address 0.0.19.136). Options
# that choose or fake targets and sources, or run scripts, are refused outright.
_VALUE_OPTIONS = frozenset(
    {
        "-p",
        "--exclude-ports",
        "--top-ports",
        "--port-ratio",
        "--max-retries",
        "--min-rate",
        "--max-rate",
        "--host-timeout",
        "--scan-delay",
        "--max-scan-delay",
        "--min-rtt-timeout",
        "--max-rtt-timeout",
        "--initial-rtt-timeout",
        "--min-parallelism",
        "--max-parallelism",
        "--min-hostgroup",
        "--max-hostgroup",
        "-g",
        "--source-port",
        "--data-length",
        "--ttl",
    }
)
_FORBIDDEN_OPTIONS = frozenset(
    {
        "-iL",
        "-iR",
        "--resume",
        "-b",
        "-D",
        "-S",
        "-e",
        "--proxies",
        "--script",
        "-sC",
        "-A",
        "-sI",
        "--exclude",
        "--excludefile",
    }
)


def _check_nmap_args(args: Sequence[str]) -> None:
    prev = ""
    for a in args:
        name = a.split("=", 1)[0]
        if name in _FORBIDDEN_OPTIONS or name.startswith("--script"):
            raise ValueError(f"refusing nmap option {a!r} in the lab")
        if not a.startswith("-") and prev not in _VALUE_OPTIONS:
            raise ValueError(f"refusing nmap argument {a!r}: it would be a target; use target=")
        prev = a if a.startswith("-") and "=" not in a else ""


# ---- the standard scenario -------------------------------------------------------------------


@dataclass(frozen=True)
class ScanSpec:
    name: str
    args: tuple[str, ...]
    target: str
    proto: str
    ip_version: int
    ports: frozenset[int]


def _ports(spec: str) -> frozenset[int]:
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def scan_spec(name: str, scan_type: str, ports: str, target: str) -> ScanSpec:
    v = 6 if ":" in target else 4
    args = (("-6",) if v == 6 else ()) + (scan_type, "-p", ports)
    return ScanSpec(name, args, target, "TCP" if scan_type == "-sS" else "UDP", v, _ports(ports))


# UDP ports chosen so that several have nmap payloads (53, 123, 161, 500, 5353: 2-4 probes
# each) and some have none (9999: one empty datagram).
STANDARD_SCANS: tuple[ScanSpec, ...] = (
    scan_spec("syn-v4", "-sS", "1-1024,3389,5900,8080,8443", FW_V4),
    scan_spec("udp-v4", "-sU", "53,123,161,500,1900,5353,9999", FW_V4),
    scan_spec("syn-v6", "-sS", "1-100,443,3389,8080,8443", FW_V6),
)
# A small one for the golden fixture.
FIXTURE_HOSTNAME = "fw-lab"
FIXTURE_SCANS: tuple[ScanSpec, ...] = (
    scan_spec("syn-v4", "-sS", "20-25,80,443,3389", FW_V4),
    scan_spec("udp-v4", "-sU", "53,123,161,9999", FW_V4),
    scan_spec("syn-v6", "-sS", "22,80,443", FW_V6),
)


@dataclass(frozen=True)
class Capture:
    """What one lab run produced; the namespaces are gone, the files stay."""

    logemu_path: Path
    json_path: Path | None
    runs: tuple[tuple[ScanSpec, NmapRun], ...]
    started: dt.datetime  # wall clock before the first probe, floored to the second
    finished: dt.datetime  # wall clock after the last line was logged, ceiled to the second
    hostname: str
    scan_addresses: dict[int, str]
    fw_addresses: dict[int, str]
    in_if: str
    prefix: str
    ruleset: str
    timings: dict[str, float]

    @property
    def probes(self) -> list[Probe]:
        return [p for _, run in self.runs for p in run.probes]

    def logemu_lines(self) -> list[str]:
        return self.logemu_path.read_text().splitlines()

    def json_records(self) -> list[dict[str, object]]:
        if self.json_path is None:
            return []
        return [json.loads(line) for line in self.json_path.read_text().splitlines() if line]


def _now_floor() -> dt.datetime:
    return dt.datetime.fromtimestamp(math.floor(time.time()), dt.UTC)


def _now_ceil() -> dt.datetime:
    return dt.datetime.fromtimestamp(math.ceil(time.time()), dt.UTC)


def capture(
    workdir: Path,
    scans: Sequence[ScanSpec] = STANDARD_SCANS,
    *,
    hostname: str = "",
    line_timeout_s: float = 15.0,
) -> Capture:
    """Set the lab up, run the scans, wait for every probe's log line, tear the lab down."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with NetLab(workdir, hostname=hostname) as lab:
        timings["setup_s"] = time.monotonic() - t0
        started = _now_floor()
        runs = []
        for spec in scans:
            runs.append((spec, lab.nmap(*spec.args, target=spec.target)))
            timings[f"nmap_{spec.name}_s"] = runs[-1][1].elapsed_s
        t1 = time.monotonic()
        expected = sum(len(r.probes) for _, r in runs)
        lab.wait_for_lines(expected, timeout_s=line_timeout_s)
        timings["wait_for_lines_s"] = time.monotonic() - t1
        finished = _now_ceil()
        t2 = time.monotonic()
    timings["teardown_s"] = time.monotonic() - t2
    timings["total_s"] = time.monotonic() - t0
    return Capture(
        logemu_path=lab.logemu_path,
        json_path=lab.json_path,
        runs=tuple(runs),
        started=started,
        finished=finished,
        hostname=lab.hostname,
        scan_addresses=lab.scan_addresses(),
        fw_addresses=lab.fw_addresses(),
        in_if=FW_IF,
        prefix=LOG_PREFIX,
        ruleset=lab.ruleset,
        timings=timings,
    )


# ---- golden fixture capture ------------------------------------------------------------------


def _write_fixture(out: Path) -> None:
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fp-netlab-") as tmp:
        cap = capture(Path(tmp), FIXTURE_SCANS, hostname=FIXTURE_HOSTNAME)
        shutil.copyfile(cap.logemu_path, out / "nmap-lab.logemu.log")
        if cap.json_path:
            shutil.copyfile(cap.json_path, out / "nmap-lab.ulogd.json")
    cmds = "\n".join(
        f"    ip netns exec fp-scan-<pid>-<rand> {' '.join(run.argv)}   # {len(run.probes)} probes"
        for _, run in cap.runs
    )
    print(f"captured {len(cap.probes)} lines into {out}\n{cmds}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--capture":
        sys.exit("usage: python -m tests.support.netlab --capture DIR")
    reason = unavailable_reason()
    if reason:
        sys.exit(f"netlab unavailable: {reason}")
    _write_fixture(Path(sys.argv[2]))
