"""How a view's dots travel to the browser: one packed row, unpacked by the page's JavaScript.

Bokeh sends numeric arrays as binary buffers but text as JSON lists: a raw day of 150k dots was
~13 MB of JSON, parsed in the browser before the first paint. So a whole view is not set on the
plot's source. It is packed into a one-row source of its own, text dictionary-coded (most text
columns hold a handful of values: site, protocol, action, series), and ``js/unpack_dots.js``
expands it in the browser into the plot's source. Live additions travel the same way, marked as
an append. (Not :mod:`pipeline.wire`, which is the Kafka record format.)

The plot draws every dot with one renderer, in row order, so the rows are the draw order
(:func:`consumers.style.draw_order`: the most common series first, the rarest last, on top): a
whole view is sorted here before it leaves; an append is merged in the browser by the same stable
sort, which the server repeats on the two columns it keeps (series and source address, so that a
tapped row's index names its source).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from bokeh.document import Document
from bokeh.models import ColumnDataSource, CustomJS

from consumers import style
from consumers.web.resources import script

PACKED_NAME: Final = "events-packed"
# A text column goes dictionary-coded when its distinct values are at most this
# share of its rows; a column of mostly unique strings (addresses of a spread-out
# day) would only grow by a dictionary.
CODE_MAX_DISTINCT_SHARE: Final = 0.5


class DotTransfer:
    """The packed source beside the plot's source, and the browser code that unpacks it into it.

    The server's copy of the plot's source stays empty: the browser alone holds a view's dots.
    The server keeps their series and source addresses, in the browser's row order.
    """

    def __init__(self, doc: Document, target: ColumnDataSource) -> None:
        self.packed = ColumnDataSource(data={}, name=PACKED_NAME)
        unpack = CustomJS(args={"packed": self.packed, "events": target}, code=script("unpack_dots"))
        # On every new view, and once at load: a view read before the page was served arrives in it.
        self.packed.js_on_change("data", unpack)
        doc.js_on_event("document_ready", unpack)
        self._generation = 0
        self.series: npt.NDArray[Any] = np.array([], dtype=object)
        # None for a view of bins (no single source per dot).
        self.src_ip: npt.NDArray[Any] | None = None

    def send(self, data: Mapping[str, npt.NDArray[Any]]) -> None:
        """Replace the plot's dots in the browser with ``data``, in draw order."""
        self._generation += 1
        order = draw_permutation(data["series"], style.draw_order(series_counts(data["series"])))
        self.series = data["series"][order]
        src_ip = data.get("src_ip")
        self.src_ip = None if src_ip is None else src_ip[order]
        # Text is put in draw order as its codes, not as Python strings (150k rows: ~0.15 s less).
        self.packed.data = pack_columns(data, self._generation, order)

    def append(self, data: Mapping[str, npt.NDArray[Any]], counts: dict[str, int]) -> None:
        """Add ``data`` to the plot's dots in the browser, all of them then in the draw order of
        ``counts`` (every row's series, the new ones included)."""
        self._generation += 1
        order = style.draw_order(counts)
        series = np.concatenate([self.series, data["series"]])
        perm = draw_permutation(series, order)
        self.series = series[perm]
        if self.src_ip is not None and "src_ip" in data:
            self.src_ip = np.concatenate([self.src_ip, data["src_ip"]])[perm]
        packed = pack_columns(data, self._generation)
        packed["append"] = [order]
        self.packed.data = packed


def series_counts(series: npt.NDArray[Any]) -> dict[str, int]:
    counts = pc.value_counts(pa.array(series, pa.string()))
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}


def draw_permutation(series: npt.NDArray[Any], order: list[str]) -> npt.NDArray[np.intp]:
    """Row order that draws ``series`` bottom to top as ``order`` says, rows of a series kept in
    their order (stable: ``js/unpack_dots.js`` merges appends by the same rule)."""
    rank = {name: i for i, name in enumerate(order)}
    coded = pc.dictionary_encode(pa.array(series, pa.string()))
    by_code = np.array([rank.get(str(name), len(order)) for name in coded.dictionary.to_pylist()], np.int16)
    ranks = by_code[coded.indices.to_numpy(zero_copy_only=False)] if len(series) else by_code[:0]
    return np.argsort(ranks, kind="stable")


def pack_columns(
    data: Mapping[str, npt.NDArray[Any]], generation: int, order: npt.NDArray[np.intp] | None = None
) -> dict[str, list[Any]]:
    """A view's columns as one row: text dictionary-coded, numbers as they are; the rows taken
    in ``order`` if given.

    A coded column ``name`` holds the codes (one byte or two per row) and ``name:dict`` its
    values. ``generation`` makes every view a change, even one equal to the last (a reload
    of the same day).
    """

    def rows(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return values if order is None else values[order]

    out: dict[str, list[Any]] = {"generation": [generation]}
    for name, values in data.items():
        if values.dtype != object or len(values) == 0:
            out[name] = [rows(values)]
            continue
        coded = pc.dictionary_encode(pc.fill_null(pa.array(values, pa.string()), ""))
        dictionary = coded.dictionary.to_pylist()
        if len(dictionary) > CODE_MAX_DISTINCT_SHARE * len(values):
            out[name] = [rows(values)]
            continue
        width = (
            np.uint8 if len(dictionary) <= 1 << 8 else np.uint16 if len(dictionary) <= 1 << 16 else np.int32
        )
        out[name] = [rows(coded.indices.to_numpy().astype(width))]
        out[f"{name}:dict"] = [dictionary]
    return out
