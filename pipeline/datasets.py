"""Named datasets beside the live archive: replays and rebuilds never write into it.

``<store_dir>/events/`` is the live archive; ``<store_dir>/datasets/<name>/``
is a complete store of its own (same layout), filled by a worker that reads
the replay topic ``fireplot.replay.<name>`` or by ``fireplot rebuild``.
``open_store`` says which store a reader of a location and dataset name reads.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import wire
from pipeline.config import Config, with_overrides
from pipeline.store import Store, is_uri

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


def worker_config(cfg: Config, name: str) -> Config:
    """``cfg`` for a worker archiving dataset ``name``: its replay topic into its store root.

    Raises ValueError for a name that is not a dataset's.
    """
    topic = replay_topic(name)
    cfg = with_overrides(cfg, "kafka", events_topic=topic)
    return with_overrides(
        cfg,
        "worker",
        store_dir=str(root(cfg.worker.store_dir, name)),
        app_id=f"{cfg.worker.app_id}.replay.{name}",
        # Into the live archive, replayed events come through another topic than the
        # originals, so the per-partition marks cannot vouch for them: check each one.
        check_all_ids=name == MAIN,
        raw_enabled=False,  # a replay archives its own topic, not the live raw lines
    )


def open_store(location: str, dataset: str | None = None) -> Store:
    """The store a reader of ``location`` (a directory or an object-store URI) means by ``dataset``.

    None is the live archive. Raises ValueError, in the words of the flags that name
    them (``--store``, ``--dataset``), for a directory that does not exist, a dataset
    that does not, or a dataset asked of a URI.
    """
    if is_uri(location):
        # An uploaded copy (`fireplot store sync`) holds the live archive's events only.
        if dataset:
            raise ValueError("--dataset needs a local store directory, not a URI")
        return Store(location)
    store_dir = Path(location)
    if not store_dir.is_dir():
        raise ValueError(f"store directory {store_dir} does not exist ([worker] store_dir or --store)")
    if dataset:
        if dataset not in names(store_dir):
            known = ", ".join(names(store_dir))
            raise ValueError(f"--dataset {dataset!r}: no such dataset (datasets: {known})")
        store_dir = root(store_dir, dataset)
    return Store(store_dir)
