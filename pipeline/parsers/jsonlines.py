"""One JSON object per line, read a whole batch at a time with ``pyarrow.json``.

``pyarrow.json`` reads a block of lines in C++ but fails the whole block on
one bad line. So the batch is read at once, and a block that fails is split
in halves until the bad lines stand alone: good lines stay on the columnar
path at a cost of a few extra reads per bad line, and each bad line gets
its reason from Python's ``json`` module.
"""

from __future__ import annotations

import json
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipeline.parsers.assemble import quote

_MIN_BLOCK_BYTES: Final = 1 << 20
_TYPE_NAMES: Final = {pa.int64(): "an integer", pa.string(): "a string"}


def read(lines: pa.Array, schema: pa.Schema) -> tuple[pa.Table, pa.Array, list[tuple[int, str]]]:
    """The fields of ``schema`` from every line that is one JSON object with fitting values.

    Returns the rows read, the position of each in ``lines``, and (position,
    reason) for every other line. Fields missing from an object are null;
    fields not in ``schema`` are ignored.
    """
    # A line break inside a line would make pyarrow see two rows; a line not
    # starting with "{" is no object. Both are explained without reading.
    shaped = pc.and_(
        pc.starts_with(pc.utf8_ltrim_whitespace(lines), "{"),
        pc.invert(pc.match_substring_regex(lines, r"[\n\r]")),
    )
    shaped = pc.fill_null(shaped, False)
    rejected = [(p, _explain(str(t or ""), schema)) for p, t in _pairs(lines, pc.invert(shaped))]
    candidates = pc.indices_nonzero(shaped).cast(pa.int64())
    tables: list[pa.Table] = []
    positions: list[pa.Array] = []
    pending = [candidates] if len(candidates) else []
    while pending:
        chunk = pending.pop()
        text = pc.take(lines, chunk)
        table = _read_block(text, schema)
        if table is not None and table.num_rows == len(chunk):
            tables.append(table)
            positions.append(chunk)
        elif len(chunk) == 1:
            rejected.append((int(chunk[0].as_py()), _explain(str(text[0].as_py()), schema)))
        else:
            half = len(chunk) // 2
            # Pushed second-half first so blocks come out in input order.
            pending += [chunk.slice(half), chunk.slice(0, half)]
    if not tables:
        return schema.empty_table(), pa.array([], pa.int64()), rejected
    return pa.concat_tables(tables), pa.concat_arrays(positions), rejected


def _read_block(text: pa.Array, schema: pa.Schema) -> pa.Table | None:
    whole = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()), text), "\n")
    data = whole[0].as_buffer()
    try:
        return pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(_MIN_BLOCK_BYTES, data.size + 1)),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _pairs(lines: pa.Array, mask: pa.Array) -> list[tuple[int, str | None]]:
    where = pc.indices_nonzero(mask)
    if len(where) == 0:
        return []
    return list(zip(where.to_pylist(), pc.take(lines, where).to_pylist(), strict=True))


def _explain(line: str, schema: pa.Schema) -> str:
    if not line.strip():
        return "empty line"
    if "\n" in line or "\r" in line:
        return "line break inside the line"
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return f"not valid JSON: {error.msg} (column {error.colno})"
    except RecursionError:
        return "not readable JSON: nested too deeply"
    if not isinstance(value, dict):
        return "JSON value is not an object"
    for field in schema:
        got = value.get(field.name)
        if got is None:
            continue
        fits = (
            (isinstance(got, int) and not isinstance(got, bool))
            if field.type == pa.int64()
            else (isinstance(got, str))
        )
        if not fits:
            wanted = _TYPE_NAMES.get(field.type, str(field.type))
            return f"field {quote(field.name)} is not {wanted}"
    return "JSON object not readable (out-of-range number or unusual encoding)"
