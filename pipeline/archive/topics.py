"""Which topics the archive reads: each sink's own topic plus every topic matching its pattern.

With MirrorMaker 2 the centre holds one copy of each site's topics
(``<site>.fireplot.events``), and sites come and go: ``[kafka]
events_topic_pattern`` / ``raw_topic_pattern`` name them all. This module
knows the names; ``pipeline.archive.app`` hands them to faust and resubscribes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.config import Config, ConfigError


class PatternTopics:
    """Which topics each sink reads: its own topic plus every topic matching its pattern.

    faust 0.15's ``app.topic(pattern=...)`` subscribes to nothing (its
    consumer subscribes by name only), so the worker lists the cluster's
    topics itself and grows each agent's name list in place. The lists are
    the very objects the agents' topics hold, so an agent archives a new
    topic from the resubscription on. Patterns match whole names; a topic
    already read by one sink is never given to another.
    """

    def __init__(self, patterns: dict[str, str]) -> None:
        self.names: dict[str, list[str]] = {local: [local] for local in patterns}
        self.patterns: dict[str, re.Pattern[str]] = {}
        for local, pattern in patterns.items():
            if not pattern:
                continue
            try:
                self.patterns[local] = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"topic pattern {pattern!r} (for {local}) is not a regular expression: {exc}"
                ) from None

    def add(self, existing: Iterable[str]) -> list[str]:
        """Take up the existing topics that match a pattern; the names newly added."""
        taken = {n for names in self.names.values() for n in names}
        added: list[str] = []
        for name in sorted(existing):
            if name in taken:
                continue
            for local, pattern in self.patterns.items():
                if pattern.fullmatch(name):
                    self.names[local].append(name)
                    taken.add(name)
                    added.append(name)
                    break
        return added


def list_topics(cfg: Config) -> set[str]:
    """Every topic name on the cluster (the admin client's metadata)."""
    from kafka import KafkaAdminClient

    from pipeline.kafka_security import client_kwargs

    admin = KafkaAdminClient(
        bootstrap_servers=cfg.kafka.effective_bootstrap, request_timeout_ms=10000, **client_kwargs(cfg.kafka)
    )
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def raw_group(app_id: str) -> str:
    """The raw-lines reader's consumer group (``pipeline.archive.raw_feed``), beside faust's ``app_id``."""
    return f"{app_id}-raw"
