"""Our GSPS rendering against DCMTK's dcmp2pgm, one presentation state per feature.

dcmp2pgm renders the whole frame after modality LUT, VOI, presentation LUT, bitmap shutter and the spatial
transformation; it does NOT crop to the displayed area, does not draw rectangular/circular/polygonal
shutters (DICOMscope draws those itself) and delivers activated overlays as separate bitmaps (written as
ovl_NNNN.pgm in verbose mode). Each test compares what dcmp2pgm renders, and checks the rest explicitly.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from tests.render.conftest import read_pnm
from tests.support.net import require_tool
from viewer.render.decode import ImageSource
from viewer.render.displaylist import resample_bitmap
from viewer.render.gsps import apply_presentation_state, overlay_plane

TOLERANCE = 1  # grey levels


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gsps-images")
    out = {}
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm"):
        out[name] = Path(shutil.copy(get_testdata_file(name), folder / name))
    return out


def make_and_render(image: Path, modify: Callable[[Dataset], None], tmp: Path) -> tuple[Dataset, np.ndarray, Path]:
    """dcmpsmk a state for `image`, let `modify` add the feature, render it with dcmp2pgm (verbose, in `tmp`)."""
    base = tmp / "base.dcm"
    subprocess.run([require_tool("dcmpsmk"), "-q", str(image), str(base)], check=True)
    ps = pydicom.dcmread(base)
    modify(ps)
    ps_path = tmp / "ps.dcm"
    ps.save_as(ps_path)
    out = tmp / "dcmtk.pgm"
    result = subprocess.run(
        [require_tool("dcmp2pgm"), "-v", "-p", str(ps_path), str(image), str(out)],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return pydicom.dcmread(ps_path), read_pnm(out), tmp


def window(center: float, width: float) -> Callable[[Dataset], None]:
    def modify(ps: Dataset) -> None:
        item = Dataset()
        item.WindowCenter, item.WindowWidth = center, width
        ps.SoftcopyVOILUTSequence = [item]

    return modify


def assert_close(ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray | None = None) -> None:
    assert ours.shape == theirs.shape
    diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    if mask is not None:
        diff = diff[mask]
    assert diff.size > 0
    assert int(diff.max()) <= TOLERANCE, f"{int((diff > TOLERANCE).sum())} pixels differ by up to {diff.max()}"
    # a rendering that is flat would match trivially: make sure there is image content
    assert len(np.unique(theirs)) > 8


def _lut_item(entries: int, bits: int, values: np.ndarray, first: int = 0) -> Dataset:
    lut = Dataset()
    lut.LUTDescriptor = [entries, first, bits]
    lut["LUTDescriptor"].VR = "US"
    lut.LUTData = values.astype(np.uint16).tolist()
    lut["LUTData"].VR = "US"
    return lut


# ----------------------------------------------------------------------------- LUT stages
def test_default_state_without_voi(images, tmp_path):
    ps, ref, _ = make_and_render(images["CT_small.dcm"], lambda ps: None, tmp_path)
    assert_close(apply_presentation_state(ps, images["CT_small.dcm"]).bitmap, ref)


def test_softcopy_voi_window(images, tmp_path):
    ps, ref, _ = make_and_render(images["CT_small.dcm"], window(40, 400), tmp_path)
    assert_close(apply_presentation_state(ps, images["CT_small.dcm"]).bitmap, ref)


def test_softcopy_voi_chosen_per_referenced_image(images, tmp_path):
    uid = str(pydicom.dcmread(images["MR_small.dcm"], stop_before_pixels=True).SOPInstanceUID)

    def modify(ps: Dataset) -> None:
        other, mine = Dataset(), Dataset()
        ref_other, ref_mine = Dataset(), Dataset()
        ref_other.ReferencedSOPClassUID = ref_mine.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ref_other.ReferencedSOPInstanceUID = "1.2.3.4.5"
        ref_mine.ReferencedSOPInstanceUID = uid
        other.ReferencedImageSequence = [ref_other]
        other.WindowCenter, other.WindowWidth = 100, 50
        mine.ReferencedImageSequence = [ref_mine]
        mine.WindowCenter, mine.WindowWidth = 900, 1200
        ps.SoftcopyVOILUTSequence = [other, mine]

    ps, ref, _ = make_and_render(images["MR_small.dcm"], modify, tmp_path)
    assert_close(apply_presentation_state(ps, images["MR_small.dcm"]).bitmap, ref)


def test_softcopy_voi_lut_sequence(images, tmp_path):
    def modify(ps: Dataset) -> None:
        item = Dataset()
        x = np.arange(2048)
        item.VOILUTSequence = [_lut_item(2048, 12, np.sqrt(x / 2047) * 4095)]
        ps.SoftcopyVOILUTSequence = [item]

    ps, ref, _ = make_and_render(images["MR_small.dcm"], modify, tmp_path)
    assert_close(apply_presentation_state(ps, images["MR_small.dcm"]).bitmap, ref)


def test_modality_lut_from_the_presentation_state(images, tmp_path):
    def modify(ps: Dataset) -> None:
        ps.RescaleSlope, ps.RescaleIntercept = 2, 100  # differs from the image's 1 / -1024
        window(1200, 1600)(ps)

    ps, ref, _ = make_and_render(images["CT_small.dcm"], modify, tmp_path)
    assert_close(apply_presentation_state(ps, images["CT_small.dcm"]).bitmap, ref)


def test_presentation_lut_shape_inverse(images, tmp_path):
    def modify(ps: Dataset) -> None:
        window(40, 400)(ps)
        ps.PresentationLUTShape = "INVERSE"

    ps, ref, _ = make_and_render(images["CT_small.dcm"], modify, tmp_path)
    assert_close(apply_presentation_state(ps, images["CT_small.dcm"]).bitmap, ref)


@pytest.mark.parametrize(("entries", "bits"), [(256, 10), (4096, 12)])
def test_presentation_lut_sequence(images, tmp_path, entries, bits):
    def modify(ps: Dataset) -> None:
        window(600, 1600)(ps)
        del ps.PresentationLUTShape
        x = np.arange(entries) / (entries - 1)
        ps.PresentationLUTSequence = [_lut_item(entries, bits, x**2 * ((1 << bits) - 1))]

    ps, ref, _ = make_and_render(images["MR_small.dcm"], modify, tmp_path)
    assert_close(apply_presentation_state(ps, images["MR_small.dcm"]).bitmap, ref)


# ----------------------------------------------------------------------------- spatial and displayed area
@pytest.mark.parametrize(("rotation", "flip"), [(90, "N"), (180, "Y"), (270, "N"), (0, "Y"), (90, "Y")])
def test_spatial_transformation(images, tmp_path, rotation, flip):
    def modify(ps: Dataset) -> None:
        window(600, 1600)(ps)
        ps.ImageRotation, ps.ImageHorizontalFlip = rotation, flip

    ps, ref, _ = make_and_render(images["CT_small.dcm"], modify, tmp_path)
    ours = apply_presentation_state(ps, images["CT_small.dcm"]).bitmap
    assert_close(ours, ref)


@pytest.mark.parametrize(("rotation", "flip", "magnification"), [(0, "N", 1.0), (90, "N", 2.0), (270, "Y", 3.0)])
def test_displayed_area_magnify(images, tmp_path, rotation, flip, magnification):
    def modify(ps: Dataset) -> None:
        window(600, 1600)(ps)
        ps.ImageRotation, ps.ImageHorizontalFlip = rotation, flip
        item = ps.DisplayedAreaSelectionSequence[0]
        item.DisplayedAreaTopLeftHandCorner = [20, 10]  # in image pixels, before the transformation
        item.DisplayedAreaBottomRightHandCorner = [51, 60]
        item.PresentationSizeMode = "MAGNIFY"
        item.PresentationPixelMagnificationRatio = magnification

    ps, ref, _ = make_and_render(images["CT_small.dcm"], modify, tmp_path)
    display_list = apply_presentation_state(ps, images["CT_small.dcm"])
    # the area covers whole pixels: columns 20..51 and rows 10..60 of the image, 32 × 51 pixels
    x0, y0, x1, y1 = display_list.spatial.image_to_transformed([(19, 9), (51, 60)]).ravel()
    left, right = int(min(x0, x1)), int(max(x0, x1))
    top, bottom = int(min(y0, y1)), int(max(y0, y1))
    expected_area = ref[top:bottom, left:right]
    k = int(magnification)
    width, height = (right - left) * k, (bottom - top) * k
    assert {width, height} == {32 * k, 51 * k}
    ours = resample_bitmap(display_list, width, height)
    assert_close(ours, np.repeat(np.repeat(expected_area, k, axis=0), k, axis=1))


# ----------------------------------------------------------------------------- shutters and overlays
def test_bitmap_shutter(images, tmp_path):
    def modify(ps: Dataset) -> None:
        del ps[0x60001001]  # the overlay plane becomes the shutter, not a displayed overlay
        ps.ShutterShape = "BITMAP"
        ps.ShutterOverlayGroup = 0x6000
        ps.ShutterPresentationValue = 0x8000

    ps, ref, _ = make_and_render(images["examples_overlay.dcm"], modify, tmp_path)
    ours = apply_presentation_state(ps, images["examples_overlay.dcm"]).bitmap
    assert_close(ours, ref)
    shutter = overlay_plane(ps, ImageSource(images["examples_overlay.dcm"]), 0x6000, 0)
    assert shutter is not None and shutter.sum() > 100
    assert set(np.unique(ours[shutter])) <= {127, 128}


@pytest.mark.parametrize("shape", ["RECTANGULAR", "CIRCULAR", "POLYGONAL"])
def test_geometric_shutters(images, tmp_path, shape):
    def modify(ps: Dataset) -> None:
        window(40, 400)(ps)
        ps.ShutterShape = shape
        ps.ShutterPresentationValue = 0xFFFF
        if shape == "RECTANGULAR":
            ps.ShutterLeftVerticalEdge, ps.ShutterRightVerticalEdge = 10, 100
            ps.ShutterUpperHorizontalEdge, ps.ShutterLowerHorizontalEdge = 20, 90
        elif shape == "CIRCULAR":
            ps.CenterOfCircularShutter = [64, 60]  # row \ column
            ps.RadiusOfCircularShutter = 40
        else:
            ps.VerticesOfThePolygonalShutter = [10, 10, 10, 110, 100, 60]  # row\column pairs, a triangle

    ps, ref, _ = make_and_render(images["CT_small.dcm"], modify, tmp_path)
    ours = apply_presentation_state(ps, images["CT_small.dcm"]).bitmap
    rows, cols = np.mgrid[1:129, 1:129]
    if shape == "RECTANGULAR":
        visible = (cols >= 10) & (cols <= 100) & (rows >= 20) & (rows <= 90)
    elif shape == "CIRCULAR":
        visible = (rows - 64) ** 2 + (cols - 60) ** 2 <= 40**2
    else:
        # inside the triangle (10,10)-(10,110)-(100,60) in (row, col): below the top edge, between the sides
        # inside the triangle (10,10)-(10,110)-(100,60) in (row, col); pixels within one of an edge are left
        # out of both checks, the rule for a pixel exactly on the outline being ours to choose
        strict = (rows > 11) & (np.abs(cols - 60) < (100 - rows) * 50 / 90 - 1)
        loose = (rows >= 9) & (np.abs(cols - 60) <= (100 - rows) * 50 / 90 + 1)
        assert_close(ours, ref, strict)
        assert np.all(ours[~loose] == 255)
        assert (ref[~loose] != 255).any()
        return
    # dcmp2pgm does not draw geometric shutters: inside, our pixels equal DCMTK's; outside, the shutter value
    assert_close(ours, ref, visible)
    assert np.all(ours[~visible] == 255)
    assert (ref[~visible] != 255).any()


def test_overlay_activation(images, tmp_path):
    def modify(ps: Dataset) -> None:
        layer = ps.GraphicLayerSequence[0]
        layer.GraphicLayerRecommendedDisplayGrayscaleValue = 0x4000

    ps, ref, folder = make_and_render(images["examples_overlay.dcm"], modify, tmp_path)
    ours = apply_presentation_state(ps, images["examples_overlay.dcm"]).bitmap
    dcmtk_overlay = read_pnm(folder / "ovl_0101.pgm")  # DCMTK's own overlay plane, foreground = P-value in DDL
    plane = dcmtk_overlay != 0
    assert plane.sum() > 100
    assert_close(ours, ref, ~plane)
    assert np.all(np.abs(ours[plane].astype(int) - dcmtk_overlay[plane]) <= TOLERANCE)


def test_overlay_not_activated_is_not_shown(images, tmp_path):
    def modify(ps: Dataset) -> None:
        del ps[0x60001001]

    ps, ref, _ = make_and_render(images["examples_overlay.dcm"], modify, tmp_path)
    assert_close(apply_presentation_state(ps, images["examples_overlay.dcm"]).bitmap, ref)
