"""Announcing scans: the alert command, the webhook (once per new scan) and the scans topic
(every new or changed version, keyed by scan_id on a compacted topic).

What is announced when is the ``Evaluator``'s business (``pipeline.detect.runner``);
here is how: a failed announcement is logged and counted by channel
(``DetectStats.alerts_failed``), not retried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any

from pipeline.config import DetectConfig, KafkaConfig
from pipeline.detect.records import DetectStats

log = logging.getLogger("fireplot.detect")


def scan_json(row: dict[str, Any]) -> str:
    out = dict(row)
    for k, v in out.items():
        if isinstance(v, dt.datetime):
            out[k] = v.isoformat().replace("+00:00", "Z")
    return json.dumps(out, sort_keys=True)


def alert_hooks(
    cfg: DetectConfig, stats: DetectStats | None = None
) -> Callable[[list[dict[str, Any]]], None]:
    """Per new scan: the alert command (scan JSON on stdin) and the webhook - once per scan_id.

    Called with the scans an evaluation found absent from the scan dataset, just before
    it writes them (see the module docstring for the exact semantics). A failed
    announcement is logged and counted in ``stats.alerts_failed`` by channel, not retried.
    """

    def fire(scans: list[dict[str, Any]]) -> None:
        for scan in scans:
            body = scan_json(scan)
            if cfg.alert_command:
                try:
                    proc = subprocess.run(
                        list(cfg.alert_command),
                        input=body,
                        text=True,
                        capture_output=True,
                        timeout=30,
                        check=False,
                    )
                    if proc.returncode != 0:
                        _failed(stats, "command", scan, f"exit {proc.returncode}: {proc.stderr}")
                except (OSError, subprocess.TimeoutExpired) as exc:
                    _failed(stats, "command", scan, str(exc))
            if cfg.alert_webhook:
                req = urllib.request.Request(  # noqa: S310 - the operator's configured URL
                    cfg.alert_webhook,
                    data=body.encode(),
                    method="POST",
                    headers={"content-type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - operator's URL
                        pass
                except OSError as exc:
                    _failed(stats, "webhook", scan, str(exc))

    return fire


def _failed(stats: DetectStats | None, channel: str, scan: dict[str, Any], error: str) -> None:
    log.warning(
        "alert failed", extra={"channel": channel, "scan_id": scan.get("scan_id"), "error": error[-500:]}
    )
    if stats is not None:
        stats.alerts_failed[channel] = stats.alerts_failed.get(channel, 0) + 1


def topic_publisher(
    cfg: DetectConfig,
    kafka_bootstrap: str,
    stats: DetectStats | None = None,
    security: KafkaConfig | None = None,
) -> Callable[[list[dict[str, Any]]], None]:
    """Every new or changed scan record to the scans topic, keyed by scan_id.

    The topic is compacted (``cleanup.policy=compact``): a scan that grows is published
    again under the same key, and compaction keeps its latest record - one per scan.
    """
    from kafka import KafkaProducer

    from pipeline.broker import ensure_topics
    from pipeline.kafka_security import client_kwargs

    # The broker does not auto-create topics; one partition keeps scans in detection order.
    # A topic made before (by hand, or by an older fireplot) is made compacted too: without
    # it the topic keeps every version of a growing scan until retention drops them all.
    ensure_topics(
        kafka_bootstrap,
        {cfg.kafka_topic: 1},
        configs={"cleanup.policy": "compact"},
        security=security,
        align_existing=True,
    )
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", **(client_kwargs(security) if security else {})
    )

    def publish(scans: list[dict[str, Any]]) -> None:
        sent = [
            (
                scan,
                producer.send(
                    cfg.kafka_topic, key=str(scan["scan_id"]).encode(), value=scan_json(scan).encode()
                ),
            )
            for scan in scans
        ]
        producer.flush(timeout=30)
        for scan, fut in sent:
            try:
                fut.get(timeout=1)
            except Exception as exc:
                _failed(stats, "topic", scan, repr(exc))

    return publish
