"""A generated demo study, so the first screen of a fresh install shows images.

A CT series of a synthetic thorax-like phantom (body, ribs ring, lungs, spine, a few nodules that come and
go along z) in Hounsfield units, with window presets. UIDs are derived from fixed names, so loading the
demo twice finds the same instances already present instead of making a second copy.
"""

from __future__ import annotations

import datetime
import uuid

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from viewer.core.store import StudyStore

DEMO_PATIENT_NAME = "DEMO^Lightbox"
DEMO_PATIENT_ID = "LIGHTBOX-DEMO"
DEMO_SLICES = 40
DEMO_SIZE = 256
SLICE_THICKNESS_MM = 5.0
PIXEL_SPACING_MM = 1.5
# (center, width, name) — what a CT reader expects to switch between.
WINDOW_PRESETS = ((40, 400, "SOFT TISSUE"), (-600, 1500, "LUNG"), (400, 1800, "BONE"))


def demo_uid(name: str) -> str:
    """A stable UID under the UUID root (2.25), derived from a name."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'lightbox-demo:' + name).int}"


DEMO_STUDY_UID = demo_uid("study")
DEMO_SERIES_UID = demo_uid("series:ct")


def phantom_slice(z: float, size: int = DEMO_SIZE) -> np.ndarray:
    """One axial slice in HU at relative height z in [0, 1]; int16."""
    y, x = np.mgrid[-1.0 : 1.0 : size * 1j, -1.0 : 1.0 : size * 1j]
    image = np.full((size, size), -1000.0, dtype=np.float32)  # air

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0

    body = ellipse(0, 0.05, 0.85, 0.62)
    image[body] = 40.0  # soft tissue
    image[body & ~ellipse(0, 0.05, 0.78, 0.55)] = -100.0  # subcutaneous fat
    ribs = ellipse(0, 0.05, 0.74, 0.52) & ~ellipse(0, 0.05, 0.69, 0.47)
    rib_pattern = (np.sin(np.arctan2(y - 0.05, x) * 12 + z * 6) > 0.2) & ribs
    image[rib_pattern] = 700.0
    lung_scale = np.sin(np.pi * min(max(z, 0.0), 1.0)) ** 0.5
    if lung_scale > 0.05:
        for side in (-1, 1):
            lung = ellipse(side * 0.33, 0.0, 0.26 * lung_scale + 0.02, 0.38 * lung_scale + 0.02)
            image[lung] = -820.0
            # Nodules of different sizes at different heights, to scroll through.
            for nz, nx, ny, r in ((0.3, 0.35, -0.1, 0.05), (0.55, 0.28, 0.15, 0.035), (0.7, 0.4, 0.05, 0.025)):
                dz = (z - nz) / 0.08
                if abs(dz) < 1.0:
                    rr = r * np.sqrt(1 - dz * dz)
                    image[ellipse(side * nx, ny, rr, rr) & lung] = 30.0
    image[ellipse(0, 0.02, 0.12, 0.1)] = 60.0  # heart / mediastinum
    image[ellipse(0, 0.45, 0.09, 0.08)] = 650.0  # vertebral body
    image[ellipse(0, 0.45, 0.05, 0.045)] = 30.0  # spinal canal
    rng = np.random.default_rng(int(z * 1000))
    image += rng.normal(0.0, 8.0, image.shape).astype(np.float32)  # scanner noise, so it looks like CT
    return np.clip(image, -1024, 3071).astype(np.int16)


def demo_datasets(slices: int = DEMO_SLICES, size: int = DEMO_SIZE) -> list[Dataset]:
    today = datetime.date.today().strftime("%Y%m%d")
    datasets = []
    for index in range(slices):
        z_mm = -index * SLICE_THICKNESS_MM
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = demo_uid(f"instance:{index}")
        ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
        ds.AccessionNumber = "DEMO0001"
        ds.Modality = "CT"
        ds.Manufacturer = "Lightbox"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "Demo CT thorax (synthetic phantom)"
        ds.SeriesDescription = "Axial 5 mm"
        ds.PatientName = DEMO_PATIENT_NAME
        ds.PatientID = DEMO_PATIENT_ID
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = SLICE_THICKNESS_MM
        ds.KVP = 120
        ds.StudyInstanceUID = DEMO_STUDY_UID
        ds.SeriesInstanceUID = DEMO_SERIES_UID
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.InstanceNumber = index + 1
        ds.FrameOfReferenceUID = demo_uid("frame-of-reference")
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [-(size * PIXEL_SPACING_MM) / 2, -(size * PIXEL_SPACING_MM) / 2, z_mm]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z_mm
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = [c for c, _w, _n in WINDOW_PRESETS]
        ds.WindowWidth = [w for _c, w, _n in WINDOW_PRESETS]
        ds.WindowCenterWidthExplanation = [n for _c, _w, n in WINDOW_PRESETS]
        ds.PixelData = phantom_slice(index / max(slices - 1, 1), size).tobytes()
        datasets.append(ds)
    return datasets


def add_demo_study(store: StudyStore, slices: int = DEMO_SLICES) -> str:
    """Put the demo study into the store (a no-op if it is already there); returns its Study Instance UID."""
    with store.batch():
        for ds in demo_datasets(slices):
            store.add_dataset(ds, source="demo")
    return DEMO_STUDY_UID
