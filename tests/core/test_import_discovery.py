"""What `lightbox import` finds in a tree, and what it refuses to touch: FIFOs, names that are not UTF-8,
links that leave the imported folder, names that would forge report lines (the real CLI, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.corpus import write_series

REPO = Path(__file__).resolve().parents[2]


def run_import(home: Path, *paths: Path | bytes, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(home), "import", *(os.fsdecode(p) for p in paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
    )


def imported_count(stdout: str) -> int:
    return int(stdout.split(" imported", 1)[0].rsplit("\n", 1)[-1])


@pytest.mark.timeout(120)
def test_fifo_in_the_tree_is_skipped_not_waited_on(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_series(tree, 2)
    os.mkfifo(tree / "pipe.dcm")  # nobody will ever write to it: open() for reading would block for good
    result = run_import(tmp_path / "home", tree, timeout=60)
    assert imported_count(result.stdout) == 2, result.stdout + result.stderr
    assert "pipe.dcm: not a regular file (a FIFO (named pipe))" in result.stdout
    assert result.returncode == 0  # skipped, not failed


@pytest.mark.timeout(120)
def test_fifo_named_on_the_command_line_is_skipped(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run_import(tmp_path / "home", fifo, timeout=60)
    assert "not a regular file" in result.stdout, result.stdout + result.stderr


def test_name_that_is_not_utf8_is_imported_and_reported_escaped(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_series(tree, 2)
    odd = os.path.join(os.fsencode(tree), b"\xff\xfe.dcm")
    with open(odd, "wb") as fh:
        fh.write((tree / "00001.dcm").read_bytes()[:200])  # cut short, so the report names it
    os.rename(tree / "00002.dcm", os.path.join(os.fsencode(tree), b"good\xe9.dcm"))  # Latin-1, not UTF-8
    result = run_import(tmp_path / "home", tree)
    assert imported_count(result.stdout) == 2, result.stdout + result.stderr  # 00001 and good\xe9
    assert "\\xff\\xfe.dcm" in result.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(tmp_path / "home"), "list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "2 instances in the store" in listed.stdout


def test_links_never_leave_the_imported_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_series(outside, 2, prefix="out")
    tree = tmp_path / "tree"
    write_series(tree / "real", 1)
    (tree / "to-file-outside.dcm").symlink_to(outside / "out00001.dcm")
    (tree / "to-folder-outside").symlink_to(outside, target_is_directory=True)
    (tree / "to-file-inside.dcm").symlink_to(tree / "real" / "00001.dcm")
    result = run_import(tmp_path / "home", tree)
    out = result.stdout
    assert "to-file-outside.dcm: symbolic link to outside the imported folder: not followed" in out, out
    assert "to-folder-outside: symbolic link to outside the imported folder: not followed" in out
    # Inside the root a link may be followed: it leads to the same file, already imported.
    assert imported_count(out) == 1
    assert "1 already present" in out


def test_newline_in_a_name_does_not_forge_a_report_line(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_series(tree, 1)
    evil = tree / "x\nFailed:\n  passwd: forged"
    evil.write_bytes(b"not dicom at all, but long enough to be sniffed" * 4)
    result = run_import(tmp_path / "home", tree)
    lines = result.stdout.splitlines()
    assert "Failed:" not in lines and not any(line.startswith("  passwd") for line in lines), result.stdout
    assert any("x\\nFailed:\\n  passwd: forged: not DICOM" in line for line in lines), result.stdout


def test_discovery_stops_when_cancelled(tmp_path: Path) -> None:
    from viewer.core.importer import import_paths
    from viewer.core.store import StudyStore
    from viewer.core.tasks import CancelToken

    write_series(tmp_path / "tree" / "a", 2)
    os.mkfifo(tmp_path / "tree" / "a" / "pipe")
    token = CancelToken()
    token.cancel()
    report = import_paths(StudyStore(tmp_path / "store"), [tmp_path / "tree"], cancel=token)
    assert report.cancelled and report.imported == 0
