"""Cut byte streams into Arrow columns of lines, with each line's byte offset.

The newline search runs in numpy and the lines become a pyarrow string array
built straight from the chunk's buffer: no Python object per line, so this is
never the bottleneck in front of a columnar parser.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.parsers import netfilter_native

CHUNK_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024  # longer "lines" are garbage or an attack; cut and rejected


@dataclass(frozen=True)
class LineBatch:
    lines: pa.StringArray
    offsets: pa.Int64Array
    end_offset: int  # byte offset just past the last complete line

    def __len__(self) -> int:
        return len(self.lines)


def _valid_utf8(arr: pa.Array) -> bool:
    try:
        arr.cast(pa.string()).validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _lossy_strings(arr: pa.Array) -> pa.StringArray:
    # Attackers control bytes in these lines; invalid UTF-8 must not stop the
    # shipper. U+FFFD keeps the line visible (and rejectable) rather than lost.
    values = [(b or b"").decode("utf-8", errors="replace").rstrip("\r") for b in arr.to_pylist()]
    return pa.array(values, pa.string())


def to_batch(data: bytes | bytearray | memoryview, base_offset: int) -> LineBatch:
    """Split complete newline-terminated ``data`` that starts at ``base_offset``.

    The batch does not keep ``data``: a caller may reuse its buffer.
    """
    size = len(data)
    if not size:
        return LineBatch(pa.array([], pa.string()), pa.array([], pa.int64()), base_offset)
    if data[-1] != 0x0A:
        raise ValueError("to_batch needs data that ends with a newline")
    cut = netfilter_native.cut_lines(data, base_offset, MAX_LINE_BYTES)
    if cut is not None:
        return LineBatch(cut[0], cut[1], base_offset + size)
    # Without the library, or for invalid UTF-8 and over-long lines: the arrays
    # below are built over the bytes themselves, so they get their own copy.
    data = bytes(data)
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 0x0A)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lines = _strings_from(data, starts, ends)
    offsets = pa.array(starts + base_offset, pa.int64())
    return LineBatch(lines, offsets, base_offset + size)


def _strings_from(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.StringArray:
    n = len(starts)
    if n and int((ends - starts).max()) > MAX_LINE_BYTES:
        return _cut_strings_from(data, starts, ends)
    # Each value runs from its line's start to the next line's, newline
    # included: the array sits on the chunk's own buffer, and the one copy
    # made is the trim of the line ends.
    value_offsets = np.empty(n + 1, dtype=np.int64)
    value_offsets[:n] = starts
    value_offsets[n] = len(data)
    buffers = [None, pa.py_buffer(value_offsets), pa.py_buffer(data)]
    binary = pa.Array.from_buffers(pa.large_binary(), n, buffers)
    if _valid_utf8(binary):
        strings = binary.cast(pa.large_string())
    else:
        strings = _lossy_strings(binary).cast(pa.large_string())
    return pc.utf8_rtrim(strings, characters="\r\n").cast(pa.string())


def _cut_strings_from(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.StringArray:
    # Some line is over-long. One boolean mask drops the newline bytes and
    # the tail of those lines; what is left is exactly the concatenated line
    # values, so the Arrow array is built over it with offsets from the
    # lengths' cumsum.
    n = len(starts)
    lengths = np.minimum(ends - starts, MAX_LINE_BYTES)
    buf = np.frombuffer(data, dtype=np.uint8)
    keep = np.ones(len(buf), dtype=bool)
    keep[ends] = False  # drop newlines
    over = lengths < (ends - starts)
    if over.any():
        for s, e, ln in zip(starts[over], ends[over], lengths[over], strict=True):
            keep[s + ln : e] = False
    compact = buf[keep]
    value_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=value_offsets[1:])
    binary = pa.Array.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(value_offsets.tobytes()), pa.py_buffer(compact.tobytes())]
    )
    if _valid_utf8(binary):
        strings = binary.cast(pa.large_string())
    else:
        strings = _lossy_strings(binary).cast(pa.large_string())
    return pc.utf8_rtrim(strings, characters="\r").cast(pa.string())


def read_batches(
    fh: BinaryIO,
    start: int | None = 0,
    final: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
    max_lines: int | None = None,
) -> Iterator[LineBatch]:
    """Line batches from ``fh`` starting at byte ``start``.

    ``start`` None reads on from where a stream (a pipe, stdin) stands,
    offsets counted from there. With ``final`` a last line without a newline
    counts (the file is complete); without it, a partial last line is left
    for the next read (a file being written by syslog may end mid-line).
    """
    if start is not None:
        fh.seek(start)
    pos = start or 0
    # One buffer for the whole read: lines are copied out of it into their
    # Arrow arrays, and the unfinished line at its end moves to its front.
    # A line longer than the buffer grows it.
    buf = bytearray(chunk_bytes)
    filled = 0
    # readinto1 returns what a pipe has now instead of waiting for a whole
    # chunk, so lines from a live stream are shipped as they come.
    readinto = getattr(fh, "readinto1", None) or getattr(fh, "readinto")  # noqa: B009 (BinaryIO lacks it)
    while True:
        if filled == len(buf):
            buf.extend(bytes(len(buf)))
        with memoryview(buf) as view:
            got = readinto(view[filled:])
        if not got:
            break
        end = filled + got
        cut = buf.rfind(b"\n", 0, end) + 1
        if cut == 0:
            filled = end
            continue
        with memoryview(buf) as view:
            batch = to_batch(view[:cut], pos)
        pos = batch.end_offset
        buf[: end - cut] = buf[cut:end]
        filled = end - cut
        yield from _split(batch, max_lines)
    if final and filled:
        batch = to_batch(bytes(buf[:filled]) + b"\n", pos)
        # The synthetic newline is not in the file: the source ends where the data did.
        batch = LineBatch(batch.lines, batch.offsets, pos + filled)
        yield from _split(batch, max_lines)


def _split(batch: LineBatch, max_lines: int | None) -> Iterator[LineBatch]:
    if max_lines is None or len(batch) <= max_lines:
        yield batch
        return
    offs = batch.offsets
    for i in range(0, len(batch), max_lines):
        j = min(i + max_lines, len(batch))
        end = offs[j].as_py() if j < len(batch) else batch.end_offset
        yield LineBatch(batch.lines.slice(i, j - i), offs.slice(i, j - i), end)


def fingerprint(fh: BinaryIO) -> str | None:
    """Identity of a log file that survives renames: a hash of its first line.

    None until the first line is complete (an empty or half-written file has
    no stable identity yet).
    """
    fh.seek(0)
    head = fh.read(4096)
    nl = head.find(b"\n")
    if nl < 0:
        return None
    return hashlib.blake2b(head[: nl + 1], digest_size=8).hexdigest()
