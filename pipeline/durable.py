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
torn target (at most one per crash: a leftover is not reused, because it
cannot be told from another writer's file in progress).

Writers that commit many files at once (the store's flush) or swap whole
directories (compaction) keep their own sequence of these steps and use
``fsync_dir`` and ``make_dirs`` from here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


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


def _create_temp(path: Path) -> tuple[Path, BinaryIO]:
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            # "x": created here or not at all; mode 0666 less the umask, as for
            # any new file, so a rendered PNG stays readable by a web server.
            return tmp, open(tmp, "xb")
        except FileExistsError:
            continue


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` durably when the block ends without error.

    Missing parent directories are created (``make_dirs``). An exception in
    the block removes the temporary file and leaves ``path`` as it was."""
    path = Path(path)
    make_dirs(path.parent)
    tmp, fh = _create_temp(path)
    try:
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
