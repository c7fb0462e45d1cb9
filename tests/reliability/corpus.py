"""Small DICOM objects made at test time, and byte-level mutations of them for fuzzing."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

PATIENT_NAME = "Fuzzmann^Patricia^Q"  # distinctive, so tests can check it never reaches ordinary logs


def tiny_instance(index: int, *, study_uid: str, series_uid: str, size: int = 8) -> Dataset:
    """A valid Secondary Capture image of size×size 8-bit pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"{series_uid}.{index}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = PATIENT_NAME
    ds.PatientID = "FUZZ-0001"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC1"
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(size * size, dtype=np.uint8) + index % 200).tobytes()
    return ds


def encode(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_series(folder: Path, count: int, *, prefix: str = "") -> list[str]:
    """Write `count` tiny instances of one new study into `folder`; returns their SOP Instance UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    study = generate_uid(prefix=None)  # 2.25.<UUID>: short enough to append an instance number
    series = generate_uid(prefix=None)
    template = tiny_instance(1, study_uid=study, series_uid=series)
    uids = []
    for i in range(1, count + 1):
        ds = copy.copy(template)
        ds.SOPInstanceUID = f"{series}.{i}"
        ds.file_meta = copy.copy(template.file_meta)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i
        ds.save_as(folder / f"{prefix}{i:05d}.dcm", enforce_file_format=True)
        uids.append(ds.SOPInstanceUID)
    return uids


@cache
def seeds() -> tuple[bytes, ...]:
    """Valid files to mutate: a tiny image, and small real ones from pydicom's test data."""
    tiny = encode(tiny_instance(1, study_uid="1.2.826.0.1.3680043.8.498.1", series_uid="1.2.826.0.1.3680043.8.498.2"))
    out = [tiny]
    for name in ("MR_small.dcm", "rtplan.dcm", "test-SR.dcm", "ExplVR_BigEnd.dcm", "SC_rgb_rle.dcm"):
        out.append(Path(get_testdata_file(name)).read_bytes())
    return tuple(out)


def meta_end(data: bytes) -> int:
    """Offset where the data set starts after the preamble and file meta (so mutations can spare the meta)."""
    if data[128:132] != b"DICM":
        return 0
    ds = pydicom.dcmread(DicomBytesIO(data), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    return 132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength)


_INTERESTING = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f", b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"]


@st.composite
def mutated(draw: st.DrawFn, *, spare_meta: bool = False) -> bytes:
    """A seed with a few byte-level mutations: flips, truncation, insertion, length/delimiter smashing."""
    data = bytearray(draw(st.sampled_from(seeds())))
    start = meta_end(bytes(data)) if spare_meta else 0
    for _ in range(draw(st.integers(1, 4))):
        if len(data) <= start + 8:
            break
        position = draw(st.integers(start, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "smash", "splice"]))
        if kind == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "truncate" and not spare_meta:
            del data[position:]
        elif kind == "truncate":
            del data[max(position, start + 8) :]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "smash":
            data[position : position + 4] = draw(st.sampled_from(_INTERESTING))
        else:
            other = draw(st.integers(start, len(data) - 1))
            data[position:position] = data[other : other + draw(st.integers(1, 64))]
    return bytes(data)
