"""The screen paints the one composition: pixels grabbed from the real viewport (offscreen) equal
`compose(viewport.view_state())` rasterized at the viewport's size – the composition print and the CLI
use – for every presentation state kind and the user's transform; and the reading state survives scrolling."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from viewer.render import gsps
from viewer.render.displaylist import rasterize
from viewer.render.lut import Window
from viewer.render.view import compose

pytest.importorskip("PySide6")

SIZE = 256


def _refer(ps: Dataset, *images: Dataset, blending: bool = False) -> Dataset:
    """Reference the images the way a state must (PS3.3 C.11.11 / C.11.14), for `gsps.applies_to`."""
    series = Dataset()
    series.SeriesInstanceUID = images[0].SeriesInstanceUID
    refs = []
    for image in images:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        refs.append(ref)
    series.ReferencedImageSequence = refs
    if not blending:
        ps.ReferencedSeriesSequence = [series]
    return ps


def _window(item: Dataset, center: float, width: float) -> None:
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = center, width
    item.SoftcopyVOILUTSequence = [voi]


def _palette(ps: Dataset) -> None:
    ramp = np.arange(256, dtype=np.uint8)
    for colour, data in (("Red", ramp), ("Green", ramp[::-1].copy()), ("Blue", (ramp // 2).astype(np.uint8))):
        setattr(ps, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 8])
        ps[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ps, f"{colour}PaletteColorLookupTableData", data.tobytes())
        ps[f"{colour}PaletteColorLookupTableData"].VR = "OW"


def grayscale(image: Dataset) -> Dataset:
    ps = Dataset()
    ps.SOPClassUID, ps.SOPInstanceUID = gsps.GRAYSCALE_PS, pydicom.uid.generate_uid()
    ps.RescaleSlope, ps.RescaleIntercept = 1, -1024
    _window(ps, 40, 400)
    ps.ImageRotation, ps.ImageHorizontalFlip = 90, "Y"
    ps.PresentationLUTShape = "INVERSE"
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner, area.DisplayedAreaBottomRightHandCorner = [17, 33], [80, 96]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelAspectRatio = [1, 1]
    ps.DisplayedAreaSelectionSequence = [area]
    ps.ShutterShape = "RECTANGULAR"
    ps.ShutterLeftVerticalEdge, ps.ShutterRightVerticalEdge = 20, 100
    ps.ShutterUpperHorizontalEdge, ps.ShutterLowerHorizontalEdge = 10, 110
    ps.ShutterPresentationValue = 0x8000
    return _refer(ps, image)


def pseudo_colour(image: Dataset) -> Dataset:
    ps = Dataset()
    ps.SOPClassUID, ps.SOPInstanceUID = gsps.PSEUDO_COLOR_PS, pydicom.uid.generate_uid()
    ps.RescaleSlope, ps.RescaleIntercept = 1, -1024
    _window(ps, 100, 1000)
    _palette(ps)
    ps.ShutterShape = "CIRCULAR"
    ps.CenterOfCircularShutter, ps.RadiusOfCircularShutter = [64, 64], 50
    return _refer(ps, image)


def colour_with_icc(image: Dataset) -> Dataset:
    ps = Dataset()
    ps.SOPClassUID, ps.SOPInstanceUID = gsps.COLOR_PS, pydicom.uid.generate_uid()
    ps.ICCProfile = Path(get_testdata_file("crayons.icc")).read_bytes()
    ps.ImageRotation = 270
    return _refer(ps, image)


def blending(image: Dataset) -> Dataset:
    ps = Dataset()
    ps.SOPClassUID, ps.SOPInstanceUID = gsps.BLENDING_PS, pydicom.uid.generate_uid()
    under, over = Dataset(), Dataset()
    under.BlendingPosition, over.BlendingPosition = "UNDERLYING", "SUPERIMPOSED"
    for item, (c, w) in ((under, (40, 400)), (over, (200, 600))):
        item.RescaleSlope, item.RescaleIntercept = 1, -1024
        _window(item, c, w)
        series = Dataset()
        series.SeriesInstanceUID = image.SeriesInstanceUID
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
        series.ReferencedImageSequence = [ref]
        item.ReferencedSeriesSequence = [series]
    ps.BlendingSequence = [under, over]
    ps.RelativeOpacity = 0.4
    _palette(ps)
    return ps


def _grab(viewport) -> np.ndarray:
    from PySide6.QtGui import QImage

    for label in [*viewport.corner_labels.values(), *viewport.marker_labels.values(), viewport.readout_label]:
        label.hide()  # the text corners are not part of the composition
    image = viewport.view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * h).reshape(h, image.bytesPerLine())
    return rows[:, : w * 3].reshape(h, w, 3).copy()


def _viewport(qtbot, path: Path):
    from viewer.render.cache import FrameCache
    from viewer.render.series import SeriesStack
    from viewer.ui.viewer.viewport import Viewport

    stack = SeriesStack.from_paths([str(path)])
    viewport = Viewport(FrameCache(stack.load_key))
    qtbot.addWidget(viewport)
    viewport.resize(SIZE, SIZE)
    # pixel-exact comparison: nearest neighbour (smooth magnification is Qt's resampling of the same bitmap)
    viewport.set_smooth(False)
    viewport.show()
    viewport.set_stack(stack, 0)
    qtbot.waitUntil(lambda: viewport.displayed_index == 0, timeout=5000)
    return viewport


def _assert_screen_is_the_composition(viewport, **compose_kwargs) -> np.ndarray:
    grabbed = _grab(viewport)
    composed = rasterize(
        compose(viewport.view_state(), presentation=viewport._presentation, **compose_kwargs),
        grabbed.shape[1],
        grabbed.shape[0],
    )
    assert grabbed.shape == composed.shape
    assert np.abs(grabbed.astype(int) - composed.astype(int)).max() <= 1
    return grabbed


USER_OPS: dict[str, Callable] = {
    "as the state says": lambda vp: None,
    "rotated": lambda vp: vp.rotate(),
    "flipped and inverted": lambda vp: (vp.set_flip(horizontal=True, vertical=True), vp.set_invert(True)),
    "zoomed and panned": lambda vp: (
        vp.set_zoom(3.0 * vp.zoom_factor()),
        vp.set_pan_center(vp.image_item.width() * 0.4, vp.image_item.height() * 0.45),
    ),
}


@pytest.mark.parametrize("user", list(USER_OPS))
@pytest.mark.parametrize(
    ("image_name", "make"),
    [
        ("CT_small.dcm", grayscale),
        ("CT_small.dcm", pseudo_colour),
        ("SC_rgb_small_odd.dcm", colour_with_icc),
        ("CT_small.dcm", blending),
        ("CT_small.dcm", None),
    ],
    ids=["grayscale", "pseudo-colour", "colour-icc", "blending", "no-state"],
)
def test_viewport_pixels_equal_the_composition(qtbot, tmp_path, image_name, make, user):
    path = Path(shutil.copy(get_testdata_file(image_name), tmp_path / image_name))
    image = pydicom.dcmread(path, stop_before_pixels=True)
    viewport = _viewport(qtbot, path)
    ps = make(image) if make is not None else None
    if ps is not None:
        viewport.set_presentation(ps, superimposed=str(path) if make is blending else None, reset_view=True)
        # a blending state's superimposed image is decoded on a worker; the blend is painted when it arrives
        qtbot.waitUntil(lambda: not viewport.superimposed_pending, timeout=10000)
    USER_OPS[user](viewport)
    grabbed = _assert_screen_is_the_composition(viewport)
    if ps is None:
        return
    # the state is really applied on screen (its stages, not the image's own window)
    plain = rasterize(compose(viewport.view_state().replace(presentation=None)), SIZE, SIZE)
    assert not np.array_equal(grabbed, plain)
    if make in (pseudo_colour, blending):  # finding 2: colour on screen, not grey
        inside = grabbed[SIZE // 2 - 20 : SIZE // 2 + 20, SIZE // 2 - 20 : SIZE // 2 + 20].astype(int)
        assert np.abs(inside[:, :, 0] - inside[:, :, 1]).max() > 30
    if make is colour_with_icc and user == "as the state says":
        raw = compose(viewport.view_state().replace(presentation=None)).bitmap
        shown = compose(viewport.view_state(), presentation=ps)
        assert shown.icc_applied and not np.array_equal(shown.bitmap, raw)


def test_viewport_bitmap_equals_the_gsps_renderer_checked_against_dcmtk(qtbot, tmp_path):
    """The stage dcmp2pgm renders (LUTs, spatial transformation, whole frame) equals the screen's bitmap."""
    import subprocess

    from tests.render.conftest import read_pnm
    from tests.support.net import require_tool

    path = Path(shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm"))
    base = tmp_path / "base.dcm"
    subprocess.run([require_tool("dcmpsmk"), "-q", str(path), str(base)], check=True)
    ps = pydicom.dcmread(base)
    _window(ps, -600, 1500)
    ps.ImageRotation, ps.ImageHorizontalFlip, ps.PresentationLUTShape = 270, "Y", "INVERSE"
    ps_path = tmp_path / "ps.dcm"
    ps.save_as(ps_path)
    out = tmp_path / "dcmtk.pgm"
    subprocess.run([require_tool("dcmp2pgm"), "-p", str(ps_path), str(path), str(out)], check=True)
    reference = read_pnm(out)
    viewport = _viewport(qtbot, path)
    viewport.set_presentation(pydicom.dcmread(ps_path), str(ps_path), reset_view=True)
    shown = viewport.display_list.bitmap
    assert shown.shape == reference.shape
    assert np.abs(shown.astype(int) - reference).max() <= 1
    _assert_screen_is_the_composition(viewport)


def _series(tmp_path: Path, count: int = 3) -> list[Path]:
    paths = []
    for number in range(1, count + 1):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{number}"
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [0, 0, number * 5]
        path = tmp_path / f"ct{number}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def test_reading_state_survives_scrolling_onto_and_off_a_state(qtbot, tmp_path):
    """Finding 1: zoom 4 and W/L 2000/500 stay through a slice with a state and the slice after it."""
    from viewer.render.cache import FrameCache
    from viewer.render.series import SeriesStack
    from viewer.ui.presentation_items import PresentationOverlay
    from viewer.ui.viewer.viewport import Viewport

    paths = _series(tmp_path)
    stack = SeriesStack.from_paths([str(p) for p in paths])
    viewport = Viewport(FrameCache(stack.load_key))
    qtbot.addWidget(viewport)
    viewport.resize(SIZE, SIZE)
    viewport.set_smooth(False)
    viewport.show()
    viewport.set_stack(stack, 0)
    qtbot.waitUntil(lambda: viewport.displayed_index == 0, timeout=5000)
    viewport.set_zoom(4.0)
    viewport.set_pan_center(40.0, 70.0)
    viewport.set_voi(Window(500, 2000))

    second = pydicom.dcmread(paths[1], stop_before_pixels=True)
    ps = grayscale(second)  # its own window, rotation and displayed area
    overlay = PresentationOverlay(viewport)
    for index in (1, 2, 1, 0):
        viewport.set_index(index)
        qtbot.waitUntil(lambda i=index: viewport.displayed_index == i, timeout=5000)
        if index == 1:
            overlay.apply(ps)  # what the chooser does by default when a slice has a state
        assert viewport.zoom_factor() == pytest.approx(4.0, rel=1e-3)
        assert viewport.pan_center() == pytest.approx((40.0, 70.0), abs=0.05)
        assert viewport.voi == Window(500, 2000)
        assert "2000" in viewport.corner_labels["bottom_right"].text() + viewport.corner_labels["bottom_left"].text()
        _assert_screen_is_the_composition(viewport)

    # Reset (fit, window 0) gives the state's own window and displayed area on the slice it covers
    viewport.set_index(1)
    qtbot.waitUntil(lambda: viewport.displayed_index == 1, timeout=5000)
    viewport.set_voi(None)
    viewport.fit()
    assert viewport.voi == Window(40, 400)
    assert viewport.display_list.spatial.rotation in (90, 270)
    _assert_screen_is_the_composition(viewport)


def test_displayed_area_clips_the_screen_like_the_film(qtbot, tmp_path):
    """A displayed area narrower than the viewport: the screen shows only the area, as compose/print do."""
    path = Path(shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm"))
    image = pydicom.dcmread(path, stop_before_pixels=True)
    ps = grayscale(image)
    ps.DisplayedAreaSelectionSequence[0].DisplayedAreaBottomRightHandCorner = [80, 64]
    viewport = _viewport(qtbot, path)
    viewport.set_presentation(ps, reset_view=True)
    grabbed = _assert_screen_is_the_composition(viewport)
    view = viewport.display_list.view(SIZE, SIZE)
    x0, y0, x1, y1 = (round(v) for v in view.area_rect)
    outside = np.ones((SIZE, SIZE), dtype=bool)
    outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
    assert grabbed[outside].max() == 0
