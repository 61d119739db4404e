"""Rejected lines, kept with their reasons: the local dead-letter file, and what goes to the topic."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.parsers import Reject


def reason_class(reason: str) -> str:
    """The reason without the offending value, for counts and metric labels."""
    # Reasons carry the offending value ("bad SRC address '…'"); metrics and
    # summaries group by the part before it so attacker text cannot explode them.
    return reason.split("'", 1)[0].split(":", 1)[0].strip() or "unknown"


def letters(rejects: list[Reject]) -> list[dict[str, object]]:
    """Rejects as dead-letter objects (JSON-ready): source position, reason, line."""
    return [
        {"source_id": r.source_id, "offset": r.offset, "reason": r.reason, "line": r.line} for r in rejects
    ]


class DeadLetters:
    """Rejected lines, one JSON object per line, with source position and reason."""

    def __init__(self, directory: Path, site: str) -> None:
        self.path = directory / f"{site}.rejects.jsonl"

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            # ensure_ascii keeps control characters from the log escaped.
            fh.write("".join(json.dumps(d, ensure_ascii=True) + "\n" for d in letters(rejects)))
