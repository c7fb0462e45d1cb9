"""The display LUT cache is keyed by what a table is made of, so viewports may share it: two headers with
equal LUT attributes share one table; a different Modality LUT (same object identity or not) never does."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.render.view import _header_key


def _header(lut_data: list[int] | None) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, 0
    if lut_data is None:
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    else:
        item = Dataset()
        item.LUTDescriptor = [len(lut_data), 0, 16]
        item.ModalityLUTType = "HU"
        item.LUTData = lut_data
        ds.ModalityLUTSequence = Sequence([item])
    return ds


def test_equal_lut_attributes_share_a_key_and_different_modality_luts_do_not() -> None:
    assert _header_key(_header(None)) == _header_key(_header(None))
    ramp = list(range(0, 4096, 1))
    assert _header_key(_header(ramp)) == _header_key(_header(list(ramp)))  # equal content, other objects
    other = list(np.clip(np.arange(4096) * 2, 0, 65535).astype(int))
    assert _header_key(_header(ramp)) != _header_key(_header(other))
    assert _header_key(_header(ramp)) != _header_key(_header(None))
