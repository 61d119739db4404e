"""Named datasets beside the live archive: replays and rebuilds never write into it.

``<store_dir>/events/`` is the live archive; ``<store_dir>/datasets/<name>/``
is a complete store of its own (same layout), filled by a worker that reads
the replay topic ``fireplot.replay.<name>`` or by ``fireplot rebuild``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import wire

DATASETS_DIR = "datasets"
MAIN = "main"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_name(name: str) -> str:
    """A dataset name is also a directory and a topic suffix: keep it to a safe alphabet."""
    if not _NAME.match(name) or name == MAIN or ".." in name:
        raise ValueError(
            f"dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', not starting with "
            f"a punctuation mark, and not {MAIN!r}"
        )
    return name


def root(store_dir: str | Path, name: str) -> Path:
    """The store root of a dataset; the live archive for ``main``."""
    if name == MAIN:
        return Path(store_dir)
    return Path(store_dir) / DATASETS_DIR / validate_name(name)


# Replayed events carry old event times; a topic whose retention were time
# based would delete them as soon as a segment rolls, so keep them until deleted.
REPLAY_TOPIC_CONFIGS = {**wire.TOPIC_CONFIGS, "retention.ms": "-1"}


def replay_topic(name: str) -> str:
    """The replay topic feeding a dataset; ``main`` feeds the live archive itself."""
    return f"fireplot.replay.{name if name == MAIN else validate_name(name)}"


def names(store_dir: str | Path) -> list[str]:
    base = Path(store_dir) / DATASETS_DIR
    found = (
        sorted(p.name for p in base.iterdir() if p.is_dir() and _NAME.match(p.name)) if base.is_dir() else []
    )
    return [MAIN, *found]
