"""Finding 4: a VOI LUT's first mapped value is signed where the modality output can be negative
(PS3.3 C.11.2.1.1), whatever the image's Pixel Representation: an unsigned CT (intercept −1024) with a
VOI LUT starting at −1000 HU, descriptor in US encoding (64536), must not render as one flat grey."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from viewer.render import gsps
from viewer.render.view import ViewState, compose

FIRST_HU = -1000
ENTRIES = 4096


def _voi_item() -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [ENTRIES, FIRST_HU + 65536, 12]  # how a US-encoded descriptor carries −1000
    item["LUTDescriptor"].VR = "US"
    item.add_new(0x00283006, "OW", np.arange(ENTRIES, dtype="<u2").tobytes())  # identity ramp 0..4095
    return item


def _expected(stored: np.ndarray) -> np.ndarray:
    """The ramp indexed by HU − (−1000), scaled from 12 bits to 8, computed independently of the viewer."""
    hu = stored.astype(np.int64) - 1024
    index = np.clip(hu - FIRST_HU, 0, ENTRIES - 1)
    return np.rint(index / 4095.0 * 255).astype(np.uint8)


@pytest.fixture
def unsigned_ct(tmp_path: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = ds.pixel_array.astype(np.uint16)  # 128..2191: fits unsigned
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    for kw in ("WindowCenter", "WindowWidth"):
        if kw in ds:
            delattr(ds, kw)
    ds.VOILUTSequence = [_voi_item()]
    path = tmp_path / "ct-unsigned.dcm"
    ds.save_as(path)
    return path


def test_images_own_voi_lut_with_negative_first_value(unsigned_ct):
    stored = pydicom.dcmread(unsigned_ct).pixel_array
    shown = compose(ViewState(str(unsigned_ct), show_overlays=False)).bitmap
    assert len(np.unique(shown)) > 50  # not one flat grey
    assert np.abs(shown.astype(int) - _expected(stored).astype(int)).max() <= 1


def test_states_voi_lut_with_negative_first_value(unsigned_ct, tmp_path):
    from viewer.render.gsps_writer import GspsContent, build_gsps

    header = pydicom.dcmread(unsigned_ct, stop_before_pixels=True)
    ps = build_gsps([header], GspsContent(items=[]))
    ps.RescaleIntercept, ps.RescaleSlope, ps.RescaleType = -1024, 1, "HU"
    item = Dataset()
    item.VOILUTSequence = [_voi_item()]
    ps.SoftcopyVOILUTSequence = [item]
    ps_path = tmp_path / "ps.dcm"
    ps.save_as(ps_path, enforce_file_format=True)
    stored = pydicom.dcmread(unsigned_ct).pixel_array
    for shown in (
        gsps.apply_presentation_state(ps, unsigned_ct).bitmap,
        compose(ViewState(str(unsigned_ct), presentation=str(ps_path))).bitmap,
    ):
        assert len(np.unique(shown)) > 50
        assert np.abs(shown.astype(int) - _expected(stored).astype(int)).max() <= 1
