"""Rejects per site: the worker's dead-letter files and the shippers' dead-letter topic(s).

Site names found in dead letters are attacker-controlled text: anything that
is not a site name as the worker accepts it is counted under ``UNKNOWN_SITE``.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from pipeline.config import KafkaConfig

WORKER_DEAD_LETTERS: Final = "_dead_letters"
# Site names as the worker accepts them (pipeline.archive.decoders.SITE_RE); anything else
# found in a dead letter is attacker text and is counted under UNKNOWN_SITE.
SITE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UNKNOWN_SITE: Final = ""


def _site_of(text: str) -> str:
    return text if SITE_RE.match(text) else UNKNOWN_SITE


class WorkerDeadLetters:
    """Counts the worker's dead letters per site, reading only what was appended since last time."""

    def __init__(self, store_root: str | Path) -> None:
        self.directory = Path(store_root) / WORKER_DEAD_LETTERS
        self._pos: dict[Path, tuple[int, int]] = {}  # path -> (inode, bytes consumed)
        self.counts: Counter[str] = Counter()

    def refresh(self) -> Counter[str]:
        if not self.directory.is_dir():
            return self.counts
        for path in sorted(self.directory.glob("*.jsonl")):
            try:
                with open(path, "rb") as fh:
                    ino = os.fstat(fh.fileno()).st_ino
                    known_ino, pos = self._pos.get(path, (ino, 0))
                    if known_ino != ino:
                        pos = 0  # replaced: a new file
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                continue
            end = chunk.rfind(b"\n") + 1  # a line still being appended waits for next time
            if end:
                self.counts.update(_sites_of_letters(chunk[:end]))
            self._pos[path] = (ino, pos + end)
        return self.counts


_LETTER_SCHEMA: Final = pa.schema([("site", pa.string())])


def _sites_of_letters(data: bytes) -> Counter[str]:
    """Sites of JSON-lines dead letters, columnar; letters written before they carried a site
    (or with a site that is not one) count as unknown."""
    try:
        table = pajson.read_json(
            pa.BufferReader(data),
            parse_options=pajson.ParseOptions(
                explicit_schema=_LETTER_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        sites = table.column("site")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        sites = pa.chunked_array([pa.array([None] * data.count(b"\n"), pa.string())])
    counts = pc.value_counts(pc.fill_null(sites, UNKNOWN_SITE).combine_chunks())
    out: Counter[str] = Counter()
    for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
        out[_site_of(value)] += n
    return out


class ShipperDeadLetters:
    """Counts the shippers' dead letters per site from the dead-letter topic(s).

    Records are keyed by ``source_id`` (``<site>:<file>:<hash>``). Topics named
    ``[kafka] dead_letter_topic`` or ``<alias>.<that name>`` (MirrorMaker 2
    replicas) are read; counts cover what the topics retain."""

    def __init__(self, kafka: KafkaConfig, max_poll_s: float = 2.0) -> None:
        self.kafka = kafka
        self.max_poll_s = max_poll_s
        self.counts: Counter[str] = Counter()
        self.behind = 0  # records not counted yet when the last refresh ran out of time
        self._consumer: Any = None
        self._assigned: set[Any] = set()

    def _topics(self, names: set[str]) -> list[str]:
        base = self.kafka.dead_letter_topic
        return sorted(n for n in names if n == base or n.endswith("." + base))

    def refresh(self) -> Counter[str]:
        if not self.kafka.dead_letter_topic:
            return self.counts
        from kafka import KafkaConsumer, TopicPartition

        from pipeline.kafka_security import client_kwargs

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.kafka.effective_bootstrap,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=10000,
                **client_kwargs(self.kafka),
            )
        consumer = self._consumer
        tps = {
            TopicPartition(t, p)
            for t in self._topics(set(consumer.topics()))
            for p in (consumer.partitions_for_topic(t) or ())
        }
        if tps != self._assigned:
            new = tps - self._assigned
            consumer.assign(sorted(tps))
            if new:
                consumer.seek_to_beginning(*new)
            self._assigned = tps
        if not tps:
            return self.counts
        end = consumer.end_offsets(list(tps))
        deadline = time.monotonic() + self.max_poll_s
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                keys = [(r.key or b"").split(b":", 1)[0].decode("utf-8", "replace") for r in records]
                self.counts.update(_site_of(k) for k in keys)
        self.behind = sum(max(0, end[tp] - consumer.position(tp)) for tp in tps)
        return self.counts

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
