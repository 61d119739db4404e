"""The native netfilter scanner (``pipeline/parsers/native``, Rust), loaded with ctypes.

`scan` hands it a batch's Arrow buffers as they are and gets back, for each
line it claims, dictionary indices and numbers: no Python object per line.
The library is optional. Without it (not built, wrong layout, or
``FIREPLOT_NETFILTER_ENGINE=arrow``) `pipeline.parsers.netfilter` uses its
pyarrow path, which gives the same events, about a third as fast.

Where the library is looked for, first found wins: ``$FIREPLOT_NATIVE_LIB``;
``native/libfireplot_netfilter.so`` beside this file (installed images);
``native/target/release/`` (a source checkout after ``cargo build --release``,
which ``scripts/bootstrap`` runs).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import pyarrow as pa

LIBRARY_NAME: Final = "libfireplot_netfilter.so"
_HERE: Final = Path(__file__).parent / "native"
CANDIDATES: Final = (_HERE / LIBRARY_NAME, _HERE / "target" / "release" / LIBRARY_NAME)

# Must match src/lib.rs: column order of the per-line output, and the
# fields that come as dictionaries.
COLUMNS: Final = (
    "status", "ts_local", "host", "prefix", "in_if", "out_if",
    "src", "dst", "proto", "spt", "dpt", "flags", "ip_version",
)  # fmt: skip
NO_FLAGS: Final = 256
DICTIONARIES: Final = ("host", "prefix", "in_if", "out_if", "src", "dst", "proto")
_LAYOUT: Final = (6 << 16) | (len(COLUMNS) << 8) | len(DICTIONARIES)


@dataclass(frozen=True)
class Scan:
    """What the scanner read from a batch."""

    claimed: int  # how many lines it read
    # int32, one entry per line, defined where status == 1; "flags" is the
    # TCP flags as bits (CWR first), or NO_FLAGS
    columns: dict[str, pa.Array]
    ts_us: pa.Array  # int64 per line: UTC, or wall clock in the source's zone where ts_local
    # string: the distinct values the columns point into; for "src" and
    # "dst" (PLAIN in src/lib.rs: a batch's sources are nearly all distinct),
    # the value of each line, empty where not claimed
    dictionaries: dict[str, pa.Array]
    # The scanner gave up on the batch: none of its first lines was one it
    # claims (src/lib.rs LOOKAHEAD), so it claims none and the columns are empty.
    declined: bool = False


_DECLINED: Final = Scan(claimed=0, columns={}, ts_us=pa.array([], pa.int64()), dictionaries={}, declined=True)


@dataclass(frozen=True)
class _Library:
    handle: ctypes.CDLL | None
    problem: str  # why there is no handle


@cache
def _library() -> _Library:
    override = os.environ.get("FIREPLOT_NATIVE_LIB")
    paths = [Path(override)] if override else list(CANDIDATES)
    found = next((path for path in paths if path.is_file()), None)
    if found is None:
        return _Library(None, f"{LIBRARY_NAME} not found in {', '.join(map(str, paths))}")
    try:
        handle = ctypes.CDLL(str(found))
    except OSError as exc:
        return _Library(None, f"cannot load {found}: {exc}")
    handle.fireplot_scan_layout.restype = ctypes.c_uint64
    handle.fireplot_scan_layout.argtypes = []
    layout = handle.fireplot_scan_layout()
    if layout != _LAYOUT:
        return _Library(None, f"{found} has layout {layout:#x}, expected {_LAYOUT:#x}: rebuild it")
    function = handle.fireplot_scan_netfilter
    function.restype = ctypes.c_int64
    function.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t,  # data
        ctypes.c_void_p, ctypes.c_size_t,  # offsets, n
        ctypes.c_void_p,  # settings
        ctypes.c_void_p,  # rows
        ctypes.c_void_p,  # ts
        ctypes.c_void_p,  # dict_offsets
        ctypes.c_void_p, ctypes.c_size_t,  # dict_data
        ctypes.c_void_p,  # dict_sizes
    ]  # fmt: skip
    cut = handle.fireplot_cut_lines
    cut.restype = ctypes.c_int64
    cut.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t,  # data
        ctypes.c_int64, ctypes.c_size_t,  # base, max_line
        ctypes.c_void_p, ctypes.c_size_t,  # starts, n
        ctypes.c_void_p,  # value_offsets
        ctypes.c_void_p, ctypes.c_size_t,  # values
    ]  # fmt: skip
    handle.fireplot_count_lines.restype = ctypes.c_size_t
    handle.fireplot_count_lines.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return _Library(handle, "")


def handle() -> ctypes.CDLL | None:
    """The loaded library (its other scanners: `native_formats`), None without it."""
    return _library().handle


def available() -> bool:
    return _library().handle is not None


def why_unavailable() -> str:
    return _library().problem


def library_path() -> str | None:
    handle = _library().handle
    return None if handle is None else str(handle._name)


def scan(lines: pa.StringArray, years: tuple[int, int, int, int], *, alone: bool) -> Scan | None:
    """Scan a batch of non-null lines; None if the library is missing or refused the batch.

    A batch none of whose first lines it claims comes back ``declined``:
    nothing claimed, and the caller reads the whole batch its own way.

    A refusal is a bug in the scanner (a panic caught at its boundary, or
    output buffers it found too small); the caller logs it.

    ``years`` tells RFC 3164 stamps their year: the latest year, the latest
    (month * 32 + day) * 86400 + second of day, and the leap years to give
    February 29 before and at that moment (`syslog.year_rule`). ``alone``:
    claim no line that another format's signature in `pipeline.parsers.auto`
    could match first.
    """
    handle = _library().handle
    if handle is None or lines.null_count:
        return None
    count = len(lines)
    offsets_buffer, data_buffer = lines.buffers()[1:3]
    assert offsets_buffer is not None
    data_address = data_buffer.address if data_buffer is not None else 0
    data_size = data_buffer.size if data_buffer is not None else 0
    # Each claimed line adds at most its own bytes to a dictionary, so a
    # dictionary never outgrows the batch's data.
    capacity = max(data_size, 1)
    rows = pa.allocate_buffer(4 * len(COLUMNS) * count)
    ts = pa.allocate_buffer(8 * count)
    settings = (ctypes.c_int64 * 5)(*years, 1 if alone else 0)
    dict_offsets = pa.allocate_buffer(4 * len(DICTIONARIES) * (count + 1))
    dict_data = pa.allocate_buffer(capacity * len(DICTIONARIES))
    sizes = (ctypes.c_int64 * (2 * len(DICTIONARIES)))()
    claimed = handle.fireplot_scan_netfilter(
        data_address,
        data_size,
        offsets_buffer.address + 4 * lines.offset,
        count,
        ctypes.addressof(settings),
        rows.address,
        ts.address,
        dict_offsets.address,
        dict_data.address,
        capacity * len(DICTIONARIES),
        ctypes.addressof(sizes),
    )
    if claimed == -2:
        return _DECLINED
    if claimed < 0:
        return None
    columns = {
        name: pa.Array.from_buffers(pa.int32(), count, [None, rows], offset=k * count)
        for k, name in enumerate(COLUMNS)
    }
    dictionaries = {}
    for k, name in enumerate(DICTIONARIES):
        entries, used = sizes[2 * k], sizes[2 * k + 1]
        dictionaries[name] = pa.StringArray.from_buffers(
            entries,
            dict_offsets.slice(4 * k * (count + 1), 4 * (entries + 1)),
            dict_data.slice(k * capacity, used),
        )
    ts_us = pa.Array.from_buffers(pa.int64(), count, [None, ts])
    return Scan(claimed=claimed, columns=columns, ts_us=ts_us, dictionaries=dictionaries)


def cut_lines(
    data: bytes | bytearray | memoryview, base: int, max_line: int
) -> tuple[pa.StringArray, pa.Int64Array] | None:
    """``data`` (whole lines, each ending in a newline) as lines without their line ends, and offsets.

    The lines lose the newline and any carriage returns before it; each
    offset is ``base`` plus where its line starts in ``data``. The arrays are
    copies: ``data`` may be reused as soon as this returns. None when the
    library is missing or leaves the chunk to the caller: invalid UTF-8, or a
    line longer than ``max_line`` bytes (`producers.lines` replaces and cuts
    those), or a refusal that would be a bug here.
    """
    handle = _library().handle
    if handle is None or not len(data):
        return None
    chunk = pa.py_buffer(data)
    count = handle.fireplot_count_lines(chunk.address, chunk.size)
    starts = pa.allocate_buffer(8 * count)
    value_offsets = pa.allocate_buffer(4 * (count + 1))
    # Every line loses at least its newline.
    values = pa.allocate_buffer(max(chunk.size - count, 1))
    written = handle.fireplot_cut_lines(
        chunk.address, chunk.size, base, max_line, starts.address, count,
        value_offsets.address, values.address, values.size,
    )  # fmt: skip
    if written < 0:
        return None
    lines = pa.StringArray.from_buffers(count, value_offsets, values.slice(0, written))
    offsets = pa.Array.from_buffers(pa.int64(), count, [None, starts])
    return lines, offsets
