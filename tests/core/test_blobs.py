"""The store's temp files made ahead of need (`viewer.core.blobs.SpareFiles`)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from tests.support.peers import make_small_instances
from viewer.core import ingest
from viewer.core.blobs import Journal, SpareFiles, write_chunks_to
from viewer.core.store import AddStatus, StudyStore


def _wait_for(condition, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.part"))


def test_spare_files_are_private_new_files_made_ahead_and_removed_on_release(tmp_path: Path) -> None:
    spares = SpareFiles(str(tmp_path))
    path, fd = spares.take()
    write_chunks_to(fd, [b"abc", memoryview(b"def")], sync=False)
    assert Path(path).read_bytes() == b"abcdef"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The helper fills up to DEPTH files besides the one taken, each in the next of DEPTH + 1 subfolders.
    assert _wait_for(lambda: len(_parts(tmp_path)) == SpareFiles.DEPTH + 1)
    made = [p for p in _parts(tmp_path) if p.parent != tmp_path]
    assert len({p.parent for p in made}) == len(made) == SpareFiles.DEPTH
    os.unlink(path)
    taken = [spares.take() for _ in range(3)]
    assert len({p for p, _ in taken}) == 3
    for p, fd in taken:
        os.close(fd)
        os.unlink(p)
    spares.release()
    spares.close()
    assert _parts(tmp_path) == []


def test_an_idle_helper_removes_its_files_and_ends(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(SpareFiles, "IDLE_S", 0.2)
    spares = SpareFiles(str(tmp_path))
    path, fd = spares.take()
    os.close(fd)
    os.unlink(path)
    assert _wait_for(lambda: spares._helper is None and not _parts(tmp_path))
    # Asked again, it starts again.
    path, fd = spares.take()
    os.close(fd)
    os.unlink(path)
    assert _wait_for(lambda: len(_parts(tmp_path)) > 0)
    spares.close()
    assert _parts(tmp_path) == []


def test_a_closed_store_leaves_no_spare_files(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    for path in make_small_instances(tmp_path / "data", 3):
        data = path.read_bytes()
        result = store.add_checked(ingest.check_part10(data), data, source="scp:TEST", sync=False)
        assert result.status is AddStatus.ADDED
    assert store.integrity_problems() == []
    store.close()
    assert list(store.tmp_dir.iterdir()) == [] and _parts(store.spare_dir) == []


def test_journal_lines_survive_without_a_close_and_a_cut_line_is_ignored(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "j" / "1.journal"))
    assert journal.append(b"ab/one\tscp:A\n") and journal.append(b"cd/two\tscp:A\n")
    # Another reader sees the lines at once (the page cache), as recovery after a kill would.
    assert Journal.read_lines(journal.path) == ["ab/one\tscp:A", "cd/two\tscp:A"]
    assert journal.append(b"ef/cut-in-the-mid")  # no newline: a copy a kill interrupted
    assert Journal.read_lines(journal.path) == ["ab/one\tscp:A", "cd/two\tscp:A"]
    journal.clear()
    assert Journal.read_lines(journal.path) == []
    assert (os.stat(journal.path).st_mode & 0o777) == 0o600
    journal.close()
    assert not os.path.exists(journal.path)  # nothing left to recover


def test_a_full_journal_says_so(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "1.journal"))
    journal.SIZE = 32
    assert journal.append(b"x" * 20 + b"\n")
    assert not journal.append(b"y" * 20 + b"\n")
    journal.clear()
    assert journal.append(b"y" * 20 + b"\n")
    journal.close()
    assert os.path.exists(journal.path)  # a line is still in it: recovery's to read
