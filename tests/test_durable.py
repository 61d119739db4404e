"""pipeline.durable: a replaced file is the old content or the new, whole, and nothing is left behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import durable

REPO = Path(__file__).resolve().parents[1]


def _others(directory: Path, *keep: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p not in keep)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class TestWrite:
    def test_write_bytes_creates_the_file_and_its_directories(self, tmp_path: Path) -> None:
        """A first write creates missing parent directories and holds exactly the bytes given."""
        path = tmp_path / "a" / "b" / "state.json"
        durable.write_bytes(path, b'{"x": 1}')
        assert path.read_bytes() == b'{"x": 1}'
        assert _others(path.parent, path) == []

    def test_write_replaces_longer_old_content_whole(self, tmp_path: Path) -> None:
        """Shorter new content leaves no tail of the old."""
        path = tmp_path / "state"
        path.write_bytes(b"x" * 10_000)
        durable.write_bytes(path, b"short")
        assert path.read_bytes() == b"short"

    @pytest.mark.parametrize("text", ["", "plain", "Grüße \u2603 \U0001f525", "a\r\nb\n"])
    def test_write_text_encodes_as_utf8_without_newline_translation(self, tmp_path: Path, text: str) -> None:
        """Text is stored as UTF-8 bytes exactly: empty, ASCII, non-ASCII and CRLF alike."""
        path = tmp_path / "t.txt"
        durable.write_text(path, text)
        assert text.encode("utf-8") == path.read_bytes()

    def test_large_content_is_written_whole(self, tmp_path: Path) -> None:
        """Content larger than any single write call may take arrives complete."""
        data = os.urandom(3 << 20)
        durable.write_bytes(tmp_path / "big", data)
        assert data == (tmp_path / "big").read_bytes()

    def test_new_file_mode_follows_the_umask(self, tmp_path: Path, umask_022: None) -> None:
        """Like open(): 0666 less the umask, so a web server may read a rendered image."""
        durable.write_bytes(tmp_path / "f", b"x")
        assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644

    def test_parquet_written_through_the_handle_reads_back(self, tmp_path: Path) -> None:
        """pyarrow writes into the handle without closing it, and the file is a whole Parquet file."""
        table = pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]})
        path = tmp_path / "t.parquet"
        with durable.replacing(path) as fh:
            pq.write_table(table, fh, compression="zstd")
        assert table.equals(pq.read_table(path))


class TestAtomicity:
    @pytest.mark.parametrize("error", [ValueError("bad"), KeyboardInterrupt()])
    def test_a_failed_write_leaves_the_old_file_and_no_temp(
        self, tmp_path: Path, error: BaseException
    ) -> None:
        """An exception in the block (even Ctrl-C) keeps the old content and removes the temporary file."""
        path = tmp_path / "state"
        path.write_bytes(b"old")
        with pytest.raises(type(error)), durable.replacing(path) as fh:
            fh.write(b"new, half")
            raise error
        assert path.read_bytes() == b"old"
        assert _others(tmp_path, path) == []

    def test_a_failed_first_write_leaves_nothing(self, tmp_path: Path) -> None:
        """Without an old file, a failed write leaves no file at all, not an empty one."""
        path = tmp_path / "state"
        with pytest.raises(RuntimeError), durable.replacing(path) as fh:
            fh.write(b"x")
            raise RuntimeError("encoder failed")
        assert list(tmp_path.iterdir()) == []

    def test_the_temp_file_is_hidden_in_the_target_directory_until_the_end(self, tmp_path: Path) -> None:
        """While writing: the old file is unchanged and the new bytes sit in one hidden .tmp beside it."""
        path = tmp_path / "dir" / "state.json"
        durable.write_bytes(path, b"old")
        with durable.replacing(path) as fh:
            fh.write(b"new")
            fh.flush()
            temps = _others(path.parent, path)
            assert path.read_bytes() == b"old"
            assert Path(fh.name).parent == path.parent
        assert len(temps) == 1 and temps[0] == Path(fh.name).name
        assert temps[0].startswith(".state.json.") and temps[0].endswith(".tmp")
        assert path.read_bytes() == b"new"
        assert _others(path.parent, path) == []

    def test_two_writers_of_one_file_never_share_a_temp_file(self, tmp_path: Path) -> None:
        """Overlapping writers each get their own temporary file; the last to finish wins, whole."""
        path = tmp_path / "state"
        with durable.replacing(path) as a, durable.replacing(path) as b:
            a.write(b"A" * 1000)
            b.write(b"B" * 10)
            assert a.name != b.name
        # b finished first (inner block), then a renamed over it.
        assert path.read_bytes() == b"A" * 1000
        assert _others(tmp_path, path) == []

    def test_a_reader_never_sees_a_torn_file(self, tmp_path: Path) -> None:
        """Readers racing many replacements only ever read one whole version."""
        path = tmp_path / "state"
        versions = [bytes([65 + i]) * (256 << 10) for i in range(4)]
        durable.write_bytes(path, versions[0])
        stop = threading.Event()
        seen: set[bytes] = set()
        bad: list[int] = []

        def read() -> None:
            while not stop.is_set():
                data = path.read_bytes()
                if data not in versions:
                    bad.append(len(data))
                seen.add(data[:1])

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(60):
                durable.write_bytes(path, versions[i % len(versions)])
        finally:
            stop.set()
            reader.join()
        assert bad == []
        assert len(seen) > 1  # the reader did overlap the writes

    def test_kill_9_mid_write_keeps_the_old_file(self, tmp_path: Path) -> None:
        """A writer killed with SIGKILL inside the block leaves the old content whole (and a hidden .tmp)."""
        path = tmp_path / "state"
        durable.write_bytes(path, b"old")
        with _writer_in_block(path) as proc:
            proc.send_signal(signal.SIGKILL)
        assert path.read_bytes() == b"old"
        leftovers = _others(tmp_path, path)
        assert len(leftovers) == 1 and leftovers[0].startswith(".state.") and leftovers[0].endswith(".tmp")


@contextlib.contextmanager
def _writer_in_block(path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process inside ``durable.replacing(path)``, new bytes written and flushed; reaped on exit."""
    code = (
        "import sys, time\n"
        "from pipeline import durable\n"
        "with durable.replacing(sys.argv[1]) as fh:\n"
        "    fh.write(b'new' * 100000); fh.flush()\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"writing\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _write_in_new_process(path: Path, data: bytes) -> None:
    code = (
        "import sys\nfrom pipeline import durable\ndurable.write_bytes(sys.argv[1], sys.argv[2].encode())\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), data.decode()], check=True, cwd=REPO)


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


class TestLeftovers:
    def test_the_next_process_removes_what_a_killed_writer_left(self, tmp_path: Path) -> None:
        """After a kill -9 mid-write, the next process replacing a file in that directory removes the
        killed writer's temporary file, and both targets hold exactly their content."""
        path = tmp_path / "state"
        durable.write_bytes(path, b"old")
        with _writer_in_block(path) as proc:
            proc.send_signal(signal.SIGKILL)
        assert len(_others(tmp_path, path)) == 1  # the leftover
        _write_in_new_process(tmp_path / "other", b"other")
        assert _others(tmp_path) == ["other", "state"]
        assert path.read_bytes() == b"old" and (tmp_path / "other").read_bytes() == b"other"

    def test_a_live_writers_temp_is_never_taken_for_a_leftover(self, tmp_path: Path) -> None:
        """A writer in another process that began before this one keeps its temporary file (it holds
        its lock) and finishes whole; once it is killed, the same file is a leftover and is removed."""
        path = tmp_path / "state"
        with _writer_in_block(path) as proc:
            (tmp,) = (tmp_path / n for n in _others(tmp_path))
            _age(tmp, 3600)  # as if that writer had started long before this process
            assert durable.remove_stale_temps(tmp_path) == []
            durable.write_bytes(tmp_path / "other", b"x")  # this process's first write there sweeps too
            assert tmp.exists()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert durable.remove_stale_temps(tmp_path) == [tmp]
        assert _others(tmp_path) == ["other"]

    def test_only_old_unlocked_files_named_as_durable_names_them_are_removed(self, tmp_path: Path) -> None:
        """Planted files: removed only the old, unlocked one of the exact pattern; look-alikes, a
        fresh temp, a locked one and a directory stay."""
        stale = tmp_path / ".state.json.0123abcd.tmp"
        kept = [
            ".state.json.tmp",  # the store's own flush temps, not durable's
            ".state.json.0123ABCD.tmp",
            ".state.json.0123abcde.tmp",
            ".state.json.0123abc.tmp",
            "state.json.0123abcd.tmp",
            ".state.json.0123abcd.tmp.bak",
            ".locked.0123abcd.tmp",
        ]
        for name in [stale.name, *kept]:
            (tmp_path / name).write_bytes(b"x")
            _age(tmp_path / name, 3600)
        (tmp_path / ".fresh.89abcdef.tmp").write_bytes(b"x")  # after this process began
        (tmp_path / ".dir.0123abcd.tmp").mkdir()
        _age(tmp_path / ".dir.0123abcd.tmp", 3600)
        with open(tmp_path / ".locked.0123abcd.tmp", "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # another open file: conflicts like another process
            rv = durable.remove_stale_temps(tmp_path)
        assert [stale] == rv
        assert _others(tmp_path) == sorted([*kept, ".fresh.89abcdef.tmp", ".dir.0123abcd.tmp"])

    def test_a_missing_directory_has_no_leftovers(self, tmp_path: Path) -> None:
        """Asking about a directory that does not exist is an empty answer, not an error."""
        assert durable.remove_stale_temps(tmp_path / "nope") == []


class TestDurability:
    def test_file_fsynced_before_rename_and_directory_after(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The promise's order: the bytes are on disk before the name, the name after the rename."""
        events: list[tuple[str, str]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
            events.append(("replace", str(dst)))
            real_replace(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        path = tmp_path / "state"
        durable.write_bytes(path, b"x")
        monkeypatch.undo()
        assert len(events) == 3
        (k1, file_fd), (k2, renamed), (k3, dir_fd) = events
        assert (k1, k2, k3) == ("fsync", "replace", "fsync")
        assert Path(file_fd).parent == tmp_path and Path(file_fd).name.startswith(".state.")
        assert renamed == str(path)
        assert dir_fd == str(tmp_path)

    def test_new_directories_are_fsynced_into_their_parents(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A first write into missing directories makes each new directory's entry durable too."""
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        durable.write_bytes(tmp_path / "a" / "b" / "f", b"x")
        first = list(synced)
        synced.clear()
        durable.write_bytes(tmp_path / "a" / "b" / "g", b"y")
        monkeypatch.undo()
        assert first[:2] == [str(tmp_path), str(tmp_path / "a")]  # a in tmp_path, then b in a
        assert first[3:] == [str(tmp_path / "a" / "b")] and Path(first[2]).name.startswith(".f.")
        assert len(synced) == 2  # existing directories: the file and its directory only

    def test_fsync_dir_accepts_directories_only(self, tmp_path: Path) -> None:
        """fsync_dir of a directory works; of a regular file it raises rather than pretending."""
        durable.fsync_dir(tmp_path)
        (tmp_path / "f").write_bytes(b"")
        with pytest.raises(NotADirectoryError):
            durable.fsync_dir(tmp_path / "f")
