"""Import from files, folders, DICOMDIR media and ZIP archives, checked against what pydicom and DCMTK say."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.pixels.utils import get_expected_length

from tests.support.net import require_tool
from viewer.core.importer import ImportReport, import_paths
from viewer.core.store import StudyStore
from viewer.core.tasks import CancelToken, Progress

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
CT = TEST_FILES / "CT_small.dcm"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
UID_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def stored_uids(store: StudyStore) -> set[str]:
    return {r[0] for r in store._conn().execute("SELECT sop_instance_uid FROM instances")}


def pydicom_verdict(path: Path) -> str | None:
    """The SOP Instance UID pydicom finds in a file that is a whole, indexable instance; else None.

    This is pydicom's and DCMTK's view, independent of the store: pydicom reads the file (forcing, as for
    preamble-less files), and a file counts only if it names all four UIDs, is not a media directory, its
    native pixel data is as long as its own header says, and DCMTK's dcmdump parses it to the end (pydicom
    reads a cut-off file quietly; dcmdump fails on it).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            uids = [str(ds.get(k, "") or "") for k in UID_KEYWORDS]
    except Exception:
        return None
    if not all(uids) or MEDIA_STORAGE_DIRECTORY in (uids[0], str(ds.file_meta.get("MediaStorageSOPClassUID", ""))):
        return None
    if "PixelData" in ds and str(ds.file_meta.get("TransferSyntaxUID", "")) in NATIVE_SYNTAXES:
        try:
            expected = int(get_expected_length(ds, unit="bytes"))
        except Exception:  # a malformed header value; pydicom cannot say how long the data should be
            expected = 0
        if len(ds.PixelData) < expected:
            return None
    if path in dcmdump_failures(path.parent):
        try:  # DCMTK is stricter about some encodings than pydicom; decoded pixels prove the file whole
            ds.pixel_array  # noqa: B018
        except Exception:
            return None
    return uids[1]


@functools.cache
def dcmdump_failures(folder: Path) -> frozenset[Path]:
    """Files in `folder` that DCMTK's dcmdump cannot parse to their end (one dcmdump run for all of them)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    run = subprocess.run([require_tool("dcmdump"), *map(str, files)], capture_output=True, text=True, errors="replace")
    marker = "reading file: "
    return frozenset(Path(line.split(marker, 1)[1].strip()) for line in run.stderr.splitlines() if marker in line)


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_imports_every_bundled_file_pydicom_can_read(store: StudyStore) -> None:
    require_tool("dcmdump")
    files = every_file(TEST_FILES)
    verdicts = {f: pydicom_verdict(f) for f in files}
    readable = {f: uid for f, uid in verdicts.items() if uid}
    report = import_paths(store, [TEST_FILES])

    # Every file is accounted for exactly once.
    stored_count = report.imported + report.duplicates + report.replaced + len(report.kept)
    assert stored_count + len(report.skipped) + len(report.failed) == len(files)
    # What pydicom reads as a whole instance is what got stored, no more, no less.
    assert stored_count == len(readable)
    assert stored_uids(store) == set(readable.values())
    assert store.counts()["instances"] == len(set(readable.values()))
    # Same UID, different bytes (one image in several transfer syntaxes): the first stored copy is kept; same
    # bytes a duplicate. Nothing is replaced unless asked.
    collisions = sum(n - 1 for n in Counter(readable.values()).values())
    assert report.replaced == 0
    assert report.duplicates + len(report.kept) == collisions
    # Everything not imported comes with a reason, and is something pydicom does not take as an instance.
    not_imported = {Path(p.source) for p in report.skipped + report.failed}
    assert not_imported == {f for f in files if f not in readable}
    assert all(p.reason for p in report.skipped + report.failed)
    reasons = Counter(p.reason.split(":")[0].split(" (")[0] for p in report.skipped + report.failed)
    print(f"\n{len(files)} bundled files: {report.summary()}\n  reasons: {dict(reasons)}")
    assert any("incomplete" in p.reason for p in report.failed)  # MR_truncated.dcm
    assert store.integrity_problems() == []


def test_second_import_of_same_files_adds_nothing(store: StudyStore, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm", "SC_rgb_small_odd.dcm"):
        shutil.copy(TEST_FILES / name, folder / name.upper().replace(".DCM", ""))
    first = import_paths(store, [folder])
    assert first.imported == 5 and first.ok
    files_before = sorted(p.name for p in store.files_dir.rglob("*") if p.is_file())
    second = import_paths(store, [folder])
    assert (second.imported, second.replaced, second.duplicates) == (0, 0, 5)
    assert sorted(p.name for p in store.files_dir.rglob("*") if p.is_file()) == files_before
    assert store.counts()["instances"] == 5


def test_non_dicom_truncated_and_random_files_are_reported(store: StudyStore, tmp_path: Path) -> None:
    cd = tmp_path / "cd"
    (cd / "viewer").mkdir(parents=True)
    data = CT.read_bytes()
    (cd / "autorun.inf").write_text("[autorun]\nopen=viewer\\viewer.exe\n")
    (cd / "index.html").write_text("<html><body>Open the viewer</body></html>")
    (cd / "viewer" / "viewer.exe").write_bytes(b"MZ\x90\x00" + os.urandom(5000))
    (cd / "random.bin").write_bytes(os.urandom(20000))
    (cd / "empty").write_bytes(b"")
    (cd / "cut_in_pixels").write_bytes(data[: len(data) - 1000])
    (cd / "cut_in_header").write_bytes(data[:700])
    (cd / "IMAGE").write_bytes(data)
    # A bare dataset (no preamble, no file meta), as old CDs and raw dumps carry.
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    raw = DicomBytesIO()
    raw.is_little_endian, raw.is_implicit_VR = True, True
    write_dataset(raw, ds)
    (cd / "RAW0001").write_bytes(raw.getvalue())

    report = import_paths(store, [cd])
    assert report.imported == 2
    assert stored_uids(store) == {pydicom.dcmread(CT).SOPInstanceUID, ds.SOPInstanceUID}
    skipped = {Path(p.source).name: p.reason for p in report.skipped}
    failed = {Path(p.source).name: p.reason for p in report.failed}
    assert set(skipped) == {"autorun.inf", "index.html", "viewer.exe", "random.bin", "empty"}
    assert set(failed) == {"cut_in_pixels", "cut_in_header"}
    assert "incomplete" in failed["cut_in_pixels"]
    assert not report.ok
    assert store.integrity_problems() == []
    assert not any(store.tmp_dir.iterdir())


# ---------------------------------------------------------------------------------------------- DICOMDIR
DICOMDIR_SOURCES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm", "SC_rgb_small_odd.dcm")


@pytest.fixture(scope="module")
def dcmtk_cd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CD tree whose DICOMDIR is written by DCMTK's dcmmkdir over lower-case 8.3 file names."""
    dcmmkdir = require_tool("dcmmkdir")
    root = tmp_path_factory.mktemp("cd")
    sources = [TEST_FILES / n for n in DICOMDIR_SOURCES if (TEST_FILES / n).is_file()]
    for i, source in enumerate(sources):
        target = root / f"ser{i % 2 + 1}" / f"im{i:05d}"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source, target)
    subprocess.run(
        [dcmmkdir, "+r", "+m", "+I", "-Nxc", "-Nec", "-Nrc", "+D", "DICOMDIR", "ser1", "ser2"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return root


def referenced_ids(dicomdir: Path) -> list[str]:
    ds = pydicom.dcmread(dicomdir)
    return ["/".join(r.ReferencedFileID) for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]


def iso9660_copy(src: Path, dst: Path) -> Path:
    """Copy a tree as an ISO 9660 CD shows it: UPPER-CASE 8.3 names with ';1' version suffixes on files."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        target = dst.joinpath(*(p.upper() for p in rel.parts))
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target.with_name(target.name + ";1"))
    # Plus what such CDs carry besides DICOM.
    (dst / "AUTORUN.INF;1").write_text("[autorun]\nopen=VIEWER.EXE\n")
    (dst / "README.HTM;1").write_text("<html>Patient CD</html>")
    return dst


def test_dcmmkdir_cd_with_iso9660_names_imports_every_referenced_instance(
    store: StudyStore, dcmtk_cd: Path, tmp_path: Path
) -> None:
    ids = referenced_ids(dcmtk_cd / "DICOMDIR")
    assert ids and all(i == i.upper() for i in ids)  # dcmmkdir wrote upper-case IDs for lower-case files
    cd = iso9660_copy(dcmtk_cd, tmp_path / "CDROM")
    expected = {pydicom.dcmread(dcmtk_cd / Path(i.lower())).SOPInstanceUID for i in ids}

    report = import_paths(store, [cd / "DICOMDIR;1"])  # the user may pick the DICOMDIR itself
    assert report.missing == []
    assert report.failed == []
    assert stored_uids(store) == expected
    assert report.imported == len(expected) == len(ids)
    assert any(f"{len(ids)} files referenced" in n for n in report.notes)
    assert {Path(p.source).name for p in report.skipped} == {"DICOMDIR;1", "AUTORUN.INF;1", "README.HTM;1"}


def test_dicomdir_with_missing_file_reports_it_and_imports_the_rest(
    store: StudyStore, dcmtk_cd: Path, tmp_path: Path
) -> None:
    cd = tmp_path / "cd"
    shutil.copytree(dcmtk_cd, cd)
    ids = referenced_ids(cd / "DICOMDIR")
    gone = cd / Path(ids[0].lower())
    gone_uid = pydicom.dcmread(gone).SOPInstanceUID
    gone.unlink()
    report = import_paths(store, [cd])
    assert [Path(p.source).relative_to(cd).as_posix() for p in report.missing] == [ids[0]]
    assert report.imported == len(ids) - 1
    assert gone_uid not in stored_uids(store)
    assert not report.ok


def test_broken_dicomdir_falls_back_to_scanning(store: StudyStore, dcmtk_cd: Path, tmp_path: Path) -> None:
    cd = tmp_path / "cd"
    shutil.copytree(dcmtk_cd, cd)
    n = len(referenced_ids(cd / "DICOMDIR"))
    (cd / "DICOMDIR").write_bytes((cd / "DICOMDIR").read_bytes()[:400])  # cut inside the records
    make_series(cd / "LATE", 1)  # a file the DICOMDIR never listed
    report = import_paths(store, [cd])
    assert report.imported == n + 1
    assert report.failed == [] and report.missing == []
    assert any("DICOMDIR" in note for note in report.notes)


# ---------------------------------------------------------------------------------------------- ZIP
def test_zip_archive_with_folders_and_nested_zip(store: StudyStore, tmp_path: Path) -> None:
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.write(TEST_FILES / "MR_small.dcm", "deeper/mr")
    archive = tmp_path / "export"  # no .zip extension: recognised by content
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(CT, "patient/study/series/1")
        z.write(TEST_FILES / "JPEG2000.dcm", "patient/study/series/2")
        z.writestr("patient/readme.txt", "not dicom")
        z.write(inner, "nested/inner.zip")
    report = import_paths(store, [archive])
    assert report.imported == 3
    assert [Path(p.source.split("!")[-1]).name for p in report.skipped] == ["readme.txt"]
    assert stored_uids(store) == {
        pydicom.dcmread(TEST_FILES / n).SOPInstanceUID for n in ("CT_small.dcm", "JPEG2000.dcm", "MR_small.dcm")
    }
    assert import_paths(store, [archive]).duplicates == 3


# ---------------------------------------------------------------------------------------------- progress, cancel
def make_series(folder: Path, count: int) -> set[str]:
    """`count` distinct CT instances (new UIDs) made from CT_small, with plain numeric file names.

    The file is encoded once with a placeholder UID; each copy swaps in a UID of the same length, which
    keeps thousands of files cheap to make.
    """
    import uuid

    folder.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().int % 10**12
    placeholder = f"2.25.{run:012d}.{'9' * 9}.{'9' * 9}"
    ds = pydicom.dcmread(CT)
    ds.SeriesInstanceUID = f"2.25.{run:012d}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = placeholder
    buffer = DicomBytesIO()
    ds.save_as(buffer)
    template = buffer.getvalue()
    assert template.count(placeholder.encode()) == 2
    uids = set()
    for i in range(count):
        uid = f"2.25.{run:012d}.{i:09d}.{i:09d}"
        (folder / f"{i:06d}").write_bytes(template.replace(placeholder.encode(), uid.encode()))
        uids.add(uid)
    return uids


def test_progress_and_cancel(store: StudyStore, tmp_path: Path) -> None:
    make_series(tmp_path / "series", 60)
    token = CancelToken()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.done >= 20:
            token.cancel()

    import viewer.core.importer as importer

    old = importer.PROGRESS_INTERVAL_S
    importer.PROGRESS_INTERVAL_S = 0.0  # report every file, so the cancel lands at a known point
    try:
        report = import_paths(store, [tmp_path / "series"], cancel=token, progress=progress)
    finally:
        importer.PROGRESS_INTERVAL_S = old
    assert report.cancelled
    assert report.total == 60
    assert report.imported == report.done == 20
    assert store.counts()["instances"] == 20
    assert seen[0].total == 60 and seen[-1].done == 20 and seen[-1].rate > 0
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    resumed = import_paths(store, [tmp_path / "series"])
    assert (resumed.imported, resumed.duplicates) == (40, 20)


def test_missing_input_is_a_failure(store: StudyStore, tmp_path: Path) -> None:
    report = import_paths(store, [tmp_path / "nope"])
    assert isinstance(report, ImportReport)
    assert [p.reason for p in report.failed] == ["no such file or folder"]


def test_header_that_breaks_pydicom_while_classifying_is_a_failure_not_a_crash(
    store: StudyStore, tmp_path: Path
) -> None:
    """A meta element whose VR no longer fits its value (here UI → FD) raises inside pydicom when read.

    Found by the import fuzz test: the exception escaped while the importer checked whether the refused
    file was a DICOMDIR, ending the whole import.
    """
    raw = bytearray(CT.read_bytes())
    meta_class = raw.index(b"\x02\x00\x02\x00UI")
    raw[meta_class + 4 : meta_class + 6] = b"FD"
    sop_instance = raw.index(b"\x08\x00\x18\x00UI")
    raw[sop_instance + 8 : sop_instance + 10] = b"//"  # a UID the store refuses, so the file is classified
    broken = tmp_path / "broken-meta.dcm"
    broken.write_bytes(bytes(raw))
    good = tmp_path / "good.dcm"
    shutil.copy(get_testdata_file("MR_small.dcm"), good)

    report = import_paths(store, [broken, good])

    assert report.imported == 1
    assert [Path(p.source).name for p in report.failed] == ["broken-meta.dcm"]
    assert store.integrity_problems() == []


def test_lightbox_with_file_arguments_imports_them_first() -> None:
    from viewer.cli import opened_documents

    ct = str(CT)
    assert opened_documents([ct]) == [ct]
    assert opened_documents(["import", ct]) == []  # a subcommand is not a document
    assert opened_documents(["--version"]) == []
    assert opened_documents([ct, "/no/such/file"]) == []
