"""Known internet-wide scanner networks: a user's list of CIDR → label, matched per source.

fireplot ships no list. Published ranges of research scanners and search
engines change (projects add and retire networks, some publish only a
reverse-DNS convention), and a list nobody here can check against its source
would label sources wrongly with the authority of a default. So the operator
keeps the list (``[enrich] scanner_networks_path``), from the sources they
trust; ``deploy/scanners.example.txt`` shows the format with documentation
ranges only.

The format: one network per line, ``CIDR LABEL``, separated by whitespace;
``#`` starts a comment; blank lines are skipped. The label is letters,
digits, ``_ . -`` (at most 63), as ``[enrich] networks`` labels are, since
labels reach tooltips, filters and CSV. A CIDR with host bits set is an
error (``192.0.2.1/24`` is usually a typo). The first line whose network
holds an address labels it. Matching is :class:`pipeline.networks.NetworkTable`,
the one CIDR matcher, per distinct address.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.networks import LABEL, NetworkTable

__all__ = ["ScannerListError", "ScannerNetworks", "parse_scanner_list"]

_NONE: Final = ""


class ScannerListError(ValueError):
    """The scanner list file cannot be read; the message names the file and line."""


def parse_scanner_list(
    path: Path,
) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """(label, network) per line of the file, in order; ScannerListError naming ``path:line``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScannerListError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScannerListError(f"{path}: cannot be read: {exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 2:
            raise ScannerListError(f"{where}: expected 'CIDR LABEL', got {len(fields)} field(s)")
        cidr, label = fields
        if not LABEL.fullmatch(label):
            raise ScannerListError(f"{where}: label {label[:80]!r}: letters, digits, '_', '.', '-' only")
        try:
            out.append((label, ipaddress.ip_network(cidr, strict=True)))
        except ValueError as exc:
            raise ScannerListError(f"{where}: {exc}") from None
    return out


class ScannerNetworks:
    """The scanner list as one matcher: per address, the label of the first network holding it."""

    def __init__(self, path: str | Path | None) -> None:
        named = parse_scanner_list(Path(path)) if path else []
        self.path = Path(path) if path else None
        self.labels = pa.array([label for label, _ in named] + [_NONE], pa.string())
        self.networks = NetworkTable([net for _, net in named])

    def __len__(self) -> int:
        return len(self.networks)

    def label(self, addresses: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per address, its scanner label; "" for other addresses and when the list is empty."""
        if isinstance(addresses, pa.ChunkedArray):
            addresses = addresses.combine_chunks()
        if not len(self.networks):
            return pa.repeat(pa.scalar(_NONE, pa.string()), len(addresses))
        hit = self.networks.match(addresses)
        return self.labels.take(pc.fill_null(hit, len(self.labels) - 1))
