"""Print test fixtures: source images made from pydicom's bundled files, and dcmprscp printers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.printer import PrintServer, print_server


@pytest.fixture(scope="session")
def ct_path() -> str:
    return get_testdata_file("CT_small.dcm")


@pytest.fixture(scope="session")
def mr_path() -> str:
    return get_testdata_file("MR_small.dcm")


@pytest.fixture(scope="session")
def rgb_path() -> str:
    return get_testdata_file("examples_rgb_color.dcm")


@pytest.fixture(scope="session")
def multiframe_path(tmp_path_factory: pytest.TempPathFactory, mr_path: str) -> str:
    """A 3-frame MONOCHROME2 object built from MR_small (each frame a different shift of the image)."""
    ds = pydicom.dcmread(mr_path)
    image = ds.pixel_array
    frames = np.stack([np.roll(image, shift * 10, axis=1) for shift in range(3)])
    ds.NumberOfFrames = 3
    ds.PixelData = frames.astype(image.dtype).tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path_factory.mktemp("multiframe") / "mr_3frames.dcm"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.fixture(scope="module")
def full_printer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrintServer]:
    """dcmprscp as the stock IHEFULL printer (8–24 cm films, 1,1…4,5 layouts, 12 bit, Presentation LUT)."""
    with print_server(tmp_path_factory.mktemp("prscp-full"), "IHEFULL") as server:
        yield server


@pytest.fixture(scope="module")
def small_printer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrintServer]:
    """dcmprscp as a test-written printer that only takes 8INX10IN film, 8 bit, no Presentation LUT."""
    with print_server(tmp_path_factory.mktemp("prscp-small"), "SMALLFILM") as server:
        yield server
