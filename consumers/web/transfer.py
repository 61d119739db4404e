"""How a view's dots travel to the browser: one packed row, unpacked by the page's JavaScript.

Bokeh sends numeric arrays as binary buffers but text as JSON lists: a raw day of 150k dots was
~13 MB of JSON, parsed in the browser before the first paint. So a whole view is not set on the
plot's source. It is packed into a one-row source of its own, text dictionary-coded (most text
columns hold a handful of values: site, protocol, action, series), and ``js/unpack_dots.js``
expands it in the browser into the plot's source. Live additions are small and stream into the
plot's source directly. (Not :mod:`pipeline.wire`, which is the Kafka record format.)
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

from consumers.web.resources import script

PACKED_NAME: Final = "events-packed"
# A text column goes dictionary-coded when its distinct values are at most this
# share of its rows; a column of mostly unique strings (addresses of a spread-out
# day) would only grow by a dictionary.
CODE_MAX_DISTINCT_SHARE: Final = 0.5


class DotTransfer:
    """The packed source beside the plot's source, and the browser code that unpacks it into it.

    The server's copy of the plot's source keeps only what was streamed onto it since the
    last view: the browser alone holds a view's dots.
    """

    def __init__(self, doc: Document, target: ColumnDataSource) -> None:
        self.packed = ColumnDataSource(data={}, name=PACKED_NAME)
        unpack = CustomJS(args={"packed": self.packed, "events": target}, code=script("unpack_dots"))
        # On every new view, and once at load: a view read before the page was served arrives in it.
        self.packed.js_on_change("data", unpack)
        doc.js_on_event("document_ready", unpack)
        self._generation = 0

    def send(self, data: Mapping[str, npt.NDArray[Any]]) -> None:
        """Replace the plot's dots in the browser with ``data``."""
        self._generation += 1
        self.packed.data = pack_columns(data, self._generation)


def pack_columns(data: Mapping[str, npt.NDArray[Any]], generation: int) -> dict[str, list[Any]]:
    """A view's columns as one row: text dictionary-coded, numbers as they are.

    A coded column ``name`` holds the codes (one byte or two per row) and ``name:dict`` its
    values. ``generation`` makes every view a change, even one equal to the last (a reload
    of the same day).
    """
    out: dict[str, list[Any]] = {"generation": [generation]}
    for name, values in data.items():
        if values.dtype != object or len(values) == 0:
            out[name] = [values]
            continue
        coded = pc.dictionary_encode(pc.fill_null(pa.array(values, pa.string()), ""))
        dictionary = coded.dictionary.to_pylist()
        if len(dictionary) > CODE_MAX_DISTINCT_SHARE * len(values):
            out[name] = [values]
            continue
        width = (
            np.uint8 if len(dictionary) <= 1 << 8 else np.uint16 if len(dictionary) <= 1 << 16 else np.int32
        )
        out[name] = [coded.indices.to_numpy().astype(width)]
        out[f"{name}:dict"] = [dictionary]
    return out
