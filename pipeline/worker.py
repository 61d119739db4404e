"""``fireplot worker``'s old address: the archive worker is the ``pipeline.archive`` package now.

``fireplot/cli.py`` imports ``run`` from here, and code written before the
split imports the worker's public names; both keep working. New code imports
from ``pipeline.archive.*`` (decoders, sink, topics, metrics, app).
"""

from pipeline.archive.app import make_app, run
from pipeline.archive.decoders import (
    DEAD_LETTER_KINDS,
    DeadLetter,
    RawLines,
    Record,
    decode_event_batches,
    raw_parser,
)
from pipeline.archive.sink import ArchiveSink, SinkStats
from pipeline.archive.topics import PatternTopics

__all__ = [
    "DEAD_LETTER_KINDS",
    "ArchiveSink",
    "DeadLetter",
    "PatternTopics",
    "RawLines",
    "Record",
    "SinkStats",
    "decode_event_batches",
    "make_app",
    "raw_parser",
    "run",
]
