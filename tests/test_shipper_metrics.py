"""A live `fireplot ship --follow`'s /metrics agree with what reached Kafka, line for line."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from producers.dead_letters import reason_class
from tests.support.lines import Mixed, write_mixed
from tests.support.metrics import by_label, scrape, wait_metric
from tests.support.system import System, free_port
from tests.support.topics import read_dead_letters, use_own_dead_letter_topic


def expected_rejects(mixed: Mixed, letters: list[dict[str, object]]) -> dict[str, float]:
    assert len(letters) == len(mixed.rejected)
    return dict(Counter(reason_class(str(d["reason"])) for d in letters))


def test_live_follow_metrics_match_what_was_shipped_rejected_and_filtered(
    system: System, tmp_path: Path
) -> None:
    """Counters of a running shipper equal the topic's events and dead letters, again as the file grows."""
    topic = use_own_dead_letter_topic(system)
    port = free_port()
    system.configure("shipper", follow_poll_interval_ms=100)
    log = tmp_path / "fw.log"
    first = write_mixed(log, 400)
    system.start("follow", "ship", str(log), "--site", "test", "--follow", "--metrics-port", str(port))

    wait_metric(port, "fireplot_shipper_lines_read_total", first.lines, log=lambda: system.log_of("follow"))
    # A batch's lines are counted before its events are queued: the last batch is done when both are.
    samples = wait_metric(port, "fireplot_shipper_events_sent_total", len(first.sent), timeout_s=10)
    assert samples[("fireplot_shipper_lines_read_total", ())] == first.lines
    letters = read_dead_letters(system.bootstrap, topic, len(first.rejected))
    assert by_label(samples, "fireplot_shipper_rejected_lines_total") == expected_rejects(first, letters)
    assert by_label(samples, "fireplot_shipper_filtered_events_total") == first.filtered
    deadline = time.monotonic() + 30
    while system.topic_events().num_rows < len(first.sent) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert system.topic_events().num_rows == len(first.sent)

    # The file grows: counters follow, by exactly what was appended.
    second = write_mixed(tmp_path / "more.log", 700)
    with open(log, "ab") as fh:
        fh.write(second.path.read_bytes())
    total_lines = first.lines + second.lines
    wait_metric(port, "fireplot_shipper_lines_read_total", total_lines, log=lambda: system.log_of("follow"))
    sent = len(first.sent) + len(second.sent)
    samples = wait_metric(port, "fireplot_shipper_events_sent_total", sent, timeout_s=10)
    assert samples[("fireplot_shipper_lines_read_total", ())] == total_lines
    letters = read_dead_letters(system.bootstrap, topic, len(first.rejected) + len(second.rejected))
    assert len(letters) == len(first.rejected) + len(second.rejected)
    want = Counter(reason_class(str(d["reason"])) for d in letters)
    assert by_label(samples, "fireplot_shipper_rejected_lines_total") == dict(want)
    assert by_label(samples, "fireplot_shipper_filtered_events_total") == dict(
        Counter(first.filtered) + Counter(second.filtered)
    )
    deadline = time.monotonic() + 30
    while system.topic_events().num_rows < len(first.sent) + len(second.sent) and time.monotonic() < deadline:
        time.sleep(0.5)
    events = system.topic_events()
    assert events.num_rows == len(first.sent) + len(second.sent)
    assert events.num_rows == len(set(events.column("source_offset").to_pylist()))
    final = scrape(port)
    assert final[("fireplot_shipper_spool_bytes", ())] == 0
    assert final[("fireplot_shipper_send_latency_seconds_count", ())] >= 2
    assert final[("fireplot_shipper_records_resent_total", ())] == 0
