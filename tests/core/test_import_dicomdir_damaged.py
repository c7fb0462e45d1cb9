"""A damaged DICOMDIR (cut short or garbled) is said to be damaged, the folder is scanned instead, and the
report lists what the DICOMDIR could not account for. DICOMDIRs are made by DCMTK's dcmmkdir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.reliability.corpus import write_series
from tests.support.net import require_tool

REPO = Path(__file__).resolve().parents[2]
TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
SOURCES = ("CT_small.dcm", "MR_small.dcm")


def _cd(tmp_path: Path) -> tuple[Path, int]:
    """A CD folder: IMAGES/IMnnnnnn files and a DICOMDIR over them, as dcmmkdir writes it."""
    cd = tmp_path / "cd"
    (cd / "IMAGES").mkdir(parents=True)
    for n, name in enumerate(SOURCES):
        shutil.copy(TEST_FILES / name, cd / "IMAGES" / f"IM{n:06d}")
    write_series(tmp_path / "series", 6)  # dcmmkdir's general purpose profile takes these too
    for n, path in enumerate(sorted((tmp_path / "series").iterdir()), len(SOURCES)):
        path.rename(cd / "IMAGES" / f"IM{n:06d}")  # PS3.10 File IDs: at most 8 characters, no dot
    subprocess.run(
        [require_tool("dcmmkdir"), "+r", "+I", "-Pgp", "+id", str(cd), "+D", str(cd / "DICOMDIR"), "IMAGES"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cd, len(SOURCES) + 6


def _import(home: Path, cd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(home), "import", str(cd)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _unlisted(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    title = "Not in the damaged DICOMDIR (imported from the folder scan):"
    if title not in lines:
        return []
    out = []
    for line in lines[lines.index(title) + 1 :]:
        if not line.startswith("  "):
            break
        out.append(line.strip().split(": ", 1)[0])
    return out


def test_whole_dicomdir_is_not_reported_damaged(tmp_path: Path) -> None:
    cd, count = _cd(tmp_path)
    result = _import(tmp_path / "home", cd)
    assert "damaged" not in result.stdout, result.stdout
    assert "unreadable" not in result.stdout
    assert f"{count} files referenced, 0 missing" in result.stdout.replace(" records, ", "\n"), result.stdout
    assert f"{count} imported" in result.stdout


@pytest.mark.parametrize("cut", [0.5, 0.8])
def test_truncated_dicomdir_is_reported_damaged_and_the_folder_scanned(tmp_path: Path, cut: float) -> None:
    cd, count = _cd(tmp_path)
    data = (cd / "DICOMDIR").read_bytes()
    (cd / "DICOMDIR").write_bytes(data[: int(len(data) * cut)])
    result = _import(tmp_path / "home", cd)
    out = result.stdout
    assert "damaged DICOMDIR" in out, out
    assert "1 damaged DICOMDIR (folder scanned instead)" in out.splitlines()[0]
    assert f"{count} imported" in out  # the folder scan found every file
    unlisted = _unlisted(out)
    assert unlisted, out  # what the surviving records do not reference is listed, by name
    assert all("/IMAGES/" in name for name in unlisted)


def test_garbled_dicomdir_is_reported_damaged(tmp_path: Path) -> None:
    cd, count = _cd(tmp_path)
    data = bytearray((cd / "DICOMDIR").read_bytes())
    # Overwrite a stretch in the middle of the records (a scratched disc, a bad copy).
    middle = len(data) // 2
    data[middle : middle + 64] = bytes((i * 37 + 11) % 256 for i in range(64))
    (cd / "DICOMDIR").write_bytes(bytes(data))
    result = _import(tmp_path / "home", cd)
    out = result.stdout
    assert "damaged DICOMDIR" in out or "unreadable DICOMDIR" in out, out
    assert f"{count} imported" in out
