"""Rejected lines reach the dead-letter topic and file with position and reason, inert, all counted.

The input mixes valid probes with malformed and hostile lines (markup,
terminal escapes, NUL and other control bytes, invalid UTF-8, an oversized
line) and with lines the edge filter drops. The dead-letter topic is read back
with a real Kafka consumer and compared line by line with the input.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.lines import write_mixed
from tests.support.system import System
from tests.support.topics import check_letters, read_dead_letters, use_own_dead_letter_topic


def test_malformed_and_hostile_lines_land_in_topic_and_file_with_reasons(
    system: System, tmp_path: Path
) -> None:
    """`fireplot ship`: the topic and the local file hold the same rejects, matching the shipper's count."""
    topic = use_own_dead_letter_topic(system)
    mixed = write_mixed(tmp_path / "fw.log", 300)

    proc = system.ship([mixed.path])

    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["lines"] == mixed.lines
    assert summary["rejected"] == len(mixed.rejected)
    assert summary["filtered_by_reason"] == mixed.filtered
    assert summary["events_sent"] == len(mixed.sent)
    letters = read_dead_letters(system.bootstrap, topic, len(mixed.rejected))
    source_ids = {str(d["source_id"]) for d in letters}
    assert len(source_ids) == 1
    (source_id,) = source_ids
    check_letters(letters, mixed, source_id)
    filed = [json.loads(x) for x in (system.dead_letter_dir / "test.rejects.jsonl").read_text().splitlines()]
    assert filed == letters, "dead-letter file and topic disagree"
    # Control characters stay escaped in the file: a `cat` of it cannot drive the terminal.
    raw = (system.dead_letter_dir / "test.rejects.jsonl").read_bytes()
    assert b"\x1b" not in raw and b"\x00" not in raw and raw.isascii()
    events = system.topic_events()
    assert sorted(events.column("source_offset").to_pylist()) == mixed.sent
