"""Durable file replacement: after a crash or power loss a file is the old content or the new, whole.

This is the one way fireplot replaces a file (manifests, registries, rollups,
scan files, snapshots, rendered images). The promise, and how it is kept:

1. the new content goes to a temporary file in the *same directory* (so the
   rename below cannot cross file systems), named ``.<name>.<random>.tmp``:
   hidden from readers that skip dot-files, and unique, so two writers of the
   same file never write into one temporary file;
2. the temporary file is fsynced: its bytes are on disk before its name is;
3. it is renamed over the target (``rename`` is atomic: a reader opens the
   old file or the new one, never a half-written one);
4. the directory is fsynced: the rename itself survives power loss.

If writing fails, the temporary file is removed and the target is untouched.
A process killed between 1 and 3 leaves a hidden ``.*.tmp`` behind, never a
torn target. Leftovers are removed by the next process that replaces a file
in that directory (``remove_stale_temps``, once per directory and process):
only files named by this module's pattern, last modified before this process
began, and not locked. A writer holds an ``flock`` on its temporary file
until the rename, so a live writer's file (in this process or another) is
never taken for a leftover; the kernel drops the lock of a killed one.

Writers that commit many files at once (the store's flush) or swap whole
directories (compaction) keep their own sequence of these steps and use
``fsync_dir`` and ``make_dirs`` from here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"
# ``.<target name>.<8 hex digits>.tmp``, as _create_temp names them, and nothing else.
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
# Temporary files last modified before this are not this process's (nor, unlocked, anyone's).
_STARTED = time.time()
_swept: set[Path] = set()
_swept_lock = threading.Lock()


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (files created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents so that they survive power loss.

    A file fsynced into a directory whose own entry was never fsynced can
    vanish with it: each directory created here is made durable in its parent."""
    missing: list[Path] = []
    d = directory
    while not d.is_dir():
        missing.append(d)
        d = d.parent
    if not missing:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for d in reversed(missing):
        fsync_dir(d.parent)


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove the temporary files that killed writers left in ``directory``; the ones removed.

    A file is removed only when its name is this module's pattern, it was last
    modified before this process began, and no one holds its lock (a writer
    holds it from creation to rename, the kernel releases it when the writer
    dies)."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not TEMP_NAME.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime >= _STARTED:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # renamed or removed meanwhile: a writer finished
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer's
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def _sweep_once(directory: Path) -> None:
    directory = Path(os.path.abspath(directory))
    with _swept_lock:
        if directory in _swept:
            return
        _swept.add(directory)
    if remove_stale_temps(directory):
        fsync_dir(directory)


def _create_temp(path: Path) -> tuple[Path, BinaryIO]:
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            # "x": created here or not at all; mode 0666 less the umask, as for
            # any new file, so a rendered PNG stays readable by a web server.
            fh = open(tmp, "xb")  # noqa: SIM115 - closed by replacing()
        except FileExistsError:
            continue
        # Marks the file as a live writer's for remove_stale_temps until it is closed.
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        return tmp, fh


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` durably when the block ends without error.

    Missing parent directories are created (``make_dirs``). An exception in
    the block removes the temporary file and leaves ``path`` as it was."""
    path = Path(path)
    make_dirs(path.parent)
    _sweep_once(path.parent)
    tmp, fh = _create_temp(path)
    try:
        # Closed (its lock released) only after the rename: until then the
        # temporary file is visibly a live writer's.
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data``; after a crash it holds the old or the new bytes."""
    with replacing(path) as fh:
        fh.write(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text``; after a crash it holds the old or the new text."""
    write_bytes(path, text.encode(encoding))


def replace_dir(built: Path, target: Path) -> None:
    """Put directory ``built`` in place of directory ``target``, a crash leaving one or the other whole.

    ``built`` sits beside ``target`` (same parent) and its files were fsynced by the caller.
    A directory cannot be renamed over a non-empty one, so the old ``target`` is moved aside to
    ``.<name>.old`` first: a crash between the two renames leaves only that, which
    ``current_dir`` then returns (the next ``replace_dir`` clears it)."""
    fsync_dir(built)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(built, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def current_dir(target: Path) -> Path | None:
    """Directory ``target`` as ``replace_dir`` left it: itself, or its old version after a crash
    between moving it aside and renaming the new one in; None when there is neither."""
    if target.is_dir():
        return target
    old = target.with_name(f".{target.name}.old")
    return old if old.is_dir() else None
