"""Patient names in every character set pydicom ships a sample for come out of the store as the standard shows them.

The expected strings are the examples of PS3.5 Annex H/I/J/K (and the matching pydicom samples' documented
names), written here as text so a decoding fault (wrong code page, ISO 2022 escapes ignored) cannot hide
behind comparing pydicom with itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files
from pydicom.filebase import DicomBytesIO

from viewer.core.importer import import_paths
from viewer.core.store import StudyQuery, StudyStore

CHARSET_FILES = {Path(p).name: Path(p) for p in get_charset_files()}

EXPECTED_NAMES = {
    "chrFren.dcm": ("ISO_IR 100", "Buc^Jérôme"),
    "chrFrenMulti.dcm": ("ISO_IR 100", "Buc^Jérôme"),
    "chrGerm.dcm": ("ISO_IR 100", "Äneas^Rüdiger"),
    "chrX1.dcm": ("ISO_IR 192", "Wang^XiaoDong=王^小東"),
    "chrX2.dcm": ("GB18030", "Wang^XiaoDong=王^小东"),
    "chrH31.dcm": ("ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    "chrH32.dcm": ("ISO 2022 IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
    "chrJapMulti.dcm": ("ISO 2022 IR 87", "やまだ^たろう"),
    "chrJapMultiExplicitIR6.dcm": ("ISO 2022 IR 87", "やまだ^たろう"),
    "chrI2.dcm": ("ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동"),
    "chrKoreanMulti.dcm": ("ISO 2022 IR 149", "김희중"),
    "chrRuss.dcm": ("ISO_IR 144", "Люкceмбypг"),
    "chrGreek.dcm": ("ISO_IR 126", "Διονυσιος"),
    "chrHbrw.dcm": ("ISO_IR 138", "שרון^דבורה"),
    "chrArab.dcm": ("ISO_IR 127", "قباني^لنزار"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_patient_name_decoded(name: str, tmp_path: Path) -> None:
    charset, expected = EXPECTED_NAMES[name]
    source = CHARSET_FILES[name]
    declared = pydicom.dcmread(source, stop_before_pixels=True).SpecificCharacterSet
    assert charset in (declared if isinstance(declared, str) else list(declared))
    # Imported under a neutral file name, through the importer, into a store of its own.
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(source, folder / "IM0001")
    _assert_imported_name(folder, tmp_path / "store", expected)


def _assert_imported_name(folder: Path, store_root: Path, expected: str) -> None:
    """Import `folder` (one file) into a store of its own: the patient name is `expected` and finds the study."""
    store = StudyStore(store_root, durable=False)
    try:
        report = import_paths(store, [folder])
        assert report.imported == 1, report.details()
        (study,) = store.studies()
        assert study.patient_name == expected
        # Search by a piece of the decoded name finds it.
        fragment = expected.split("=")[-1].split("^")[0][:2]
        assert [s.study_uid for s in store.studies(StudyQuery(text=fragment))] == [study.study_uid]
    finally:
        store.close()


def test_every_bundled_charset_sample_is_covered() -> None:
    # A sample pydicom adds later should get its expectation here rather than pass unnoticed.
    samples = {n for n, p in CHARSET_FILES.items() if n.endswith(".dcm")}
    without_patient = {"chrSQEncoding.dcm", "chrSQEncoding1.dcm"}  # sequence-only samples, no instance UIDs
    assert samples - without_patient - set(EXPECTED_NAMES) == set()


def test_iso_2022_ir_159_supplementary_kanji(tmp_path: Path) -> None:
    """JIS X 0212 (ISO 2022 IR 159), for which pydicom ships no sample: the bytes are written by hand."""
    from pydicom.data import get_testdata_file

    expected = "Yamada^Tarou=丂丄^丅"
    # ESC $ ( D switches to JIS X 0212; ESC ( B back to ASCII before each delimiter (PS3.5 6.1.2.5.3).
    value = b"Yamada^Tarou=\x1b$(D0!0\x22\x1b(B^\x1b$(D0#\x1b(B"
    value += b" " * (len(value) % 2)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 159"]
    ds.PatientName = "X" * len(value)  # a placeholder of the same length, replaced by the bytes above:
    folder = tmp_path / "in"  # pydicom's own encoder leaves out the ESC ( B before delimiters
    folder.mkdir()
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    (folder / "IM0001").write_bytes(buffer.getvalue().replace(b"X" * len(value), value))
    assert b"\x1b$(D" in (folder / "IM0001").read_bytes()
    _assert_imported_name(folder, tmp_path / "store", expected)
