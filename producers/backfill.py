"""Backfill: load old logs (any format, rotated names, .gz) with a progress bar.

A backfill is a shipping run over files that no longer grow, so it is the
shipper itself with the read-position registry: a file already shipped to
its end is skipped, one cut short resumes where Kafka acknowledged it, and a
second run over the same files adds nothing. This module only adds the
operator's view: bytes done of bytes to do, rate and ETA.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.progress import ProgressLine


class BackfillProgress:
    """Progress over a set of files, measured in their on-disk bytes.

    Plain files advance with every batch; a compressed file's offsets count
    decompressed bytes, so it counts as done when it is finished.
    """

    def __init__(self, files: Iterable[Path]) -> None:
        self.sizes = {p: p.stat().st_size for p in files if p.exists()}
        self.total = sum(self.sizes.values())
        self.done_files: set[Path] = set()
        self.current: dict[Path, int] = {}
        self.line = ProgressLine()

    def __call__(self, path: Path, pos: int, finished: bool) -> None:
        if finished:
            self.done_files.add(path)
            self.current.pop(path, None)
        elif not str(path).endswith(".gz"):
            self.current[path] = min(pos, self.sizes.get(path, pos))
        self.show(final=False)

    def show(self, final: bool) -> None:
        done = sum(self.sizes.get(p, 0) for p in self.done_files) + sum(self.current.values())
        share = done / self.total if self.total else 1.0
        detail = (
            f"{len(self.done_files)}/{len(self.sizes)} files  {done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB  "
            f"{done / self.line.elapsed_s / 1e6:,.1f} MB/s"
        )
        self.line.show(share, detail, final)
