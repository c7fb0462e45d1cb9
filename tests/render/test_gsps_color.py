"""Colour, pseudo-colour and blending presentation states (made with pydicom over pydicom's test images)."""

from __future__ import annotations

import numpy as np
import pydicom
from PIL import ImageCms
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from viewer.render.decode import ImageSource
from viewer.render.gsps import (
    BLENDING_PS,
    COLOR_PS,
    GRAYSCALE_PS,
    PSEUDO_COLOR_PS,
    apply_blending,
    apply_presentation_state,
    rgb_to_cielab,
)


def _window(ps: Dataset, center: float, width: float) -> None:
    item = Dataset()
    item.WindowCenter, item.WindowWidth = center, width
    ps.SoftcopyVOILUTSequence = [item]


def _red_ramp_palette(ps: Dataset) -> None:
    for colour in ("Red", "Green", "Blue"):
        setattr(ps, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 8])
        ps[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        data = np.arange(256, dtype=np.uint8) if colour == "Red" else np.zeros(256, dtype=np.uint8)
        setattr(ps, f"{colour}PaletteColorLookupTableData", data.tobytes())
        ps[f"{colour}PaletteColorLookupTableData"].VR = "OW"


def test_pseudo_colour_indexes_the_palette_with_the_voi_output():
    path = get_testdata_file("MR_small.dcm")
    grey_ps = Dataset()
    grey_ps.SOPClassUID = GRAYSCALE_PS
    _window(grey_ps, 600, 1600)
    grey = apply_presentation_state(grey_ps, path).bitmap
    ps = Dataset()
    ps.SOPClassUID = PSEUDO_COLOR_PS
    _window(ps, 600, 1600)
    _red_ramp_palette(ps)
    rgb = apply_presentation_state(ps, path).bitmap
    assert rgb.shape == (*grey.shape, 3)
    assert np.abs(rgb[:, :, 0].astype(int) - grey).max() <= 1
    assert rgb[:, :, 1:].max() == 0


def test_blending_mixes_grey_underlying_and_palette_superimposed():
    ct = get_testdata_file("CT_small.dcm")
    ps = Dataset()
    ps.SOPClassUID = BLENDING_PS
    under, over = Dataset(), Dataset()
    under.BlendingPosition, over.BlendingPosition = "UNDERLYING", "SUPERIMPOSED"
    header = pydicom.dcmread(ct, stop_before_pixels=True)
    for item, (c, w) in ((under, (40, 400)), (over, (200, 600))):
        item.RescaleSlope, item.RescaleIntercept = header.RescaleSlope, header.RescaleIntercept
        _window(item, c, w)
    ps.BlendingSequence = [under, over]
    ps.RelativeOpacity = 0.25
    _red_ramp_palette(ps)
    blended = apply_blending(ps, ct, ct).bitmap.astype(float)

    def grey_of(c: float, w: float) -> np.ndarray:
        g = Dataset()
        g.SOPClassUID = GRAYSCALE_PS
        g.RescaleSlope, g.RescaleIntercept = header.RescaleSlope, header.RescaleIntercept
        _window(g, c, w)
        return apply_presentation_state(g, ct).bitmap.astype(float)

    u, o = grey_of(40, 400), grey_of(200, 600)
    assert np.abs(blended[:, :, 0] - (0.75 * u + 0.25 * o)).max() <= 1.5
    assert np.abs(blended[:, :, 1] - 0.75 * u).max() <= 1.5


def test_colour_state_icc_profile_is_applied_and_shutter_colour_used():
    path = get_testdata_file("SC_rgb_small_odd.dcm")
    source = ImageSource(path)
    original = source.frame(0)
    plain = Dataset()
    plain.SOPClassUID = COLOR_PS
    assert np.array_equal(apply_presentation_state(plain, path).bitmap, original)

    with_srgb = Dataset()
    with_srgb.SOPClassUID = COLOR_PS
    with_srgb.ICCProfile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = apply_presentation_state(with_srgb, path)
    assert result.icc_applied
    assert np.abs(result.bitmap.astype(int) - original).max() <= 2  # sRGB → sRGB is (nearly) the identity

    shuttered = Dataset()
    shuttered.SOPClassUID = COLOR_PS
    shuttered.ShutterShape = "RECTANGULAR"
    shuttered.ShutterLeftVerticalEdge, shuttered.ShutterRightVerticalEdge = 2, 3
    shuttered.ShutterUpperHorizontalEdge, shuttered.ShutterLowerHorizontalEdge = 1, source.rows
    shuttered.ShutterPresentationColorCIELabValue = list(rgb_to_cielab((0, 0, 255)))
    bitmap = apply_presentation_state(shuttered, path).bitmap
    assert tuple(bitmap[0, 0]) == (0, 0, 255) and np.array_equal(bitmap[:, 1:3], original[:, 1:3])
