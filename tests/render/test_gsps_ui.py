"""A presentation state on the viewport: its annotations land in image coordinates, its stages in the bitmap."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file

from viewer.render.displaylist import GraphicItem, TextItem
from viewer.render.gsps_writer import GspsContent, build_gsps

pytest.importorskip("PySide6")


def test_overlay_layer_draws_state_items_on_the_viewport(qtbot, tmp_path):
    import numpy as np

    from viewer.render.cache import FrameCache
    from viewer.render.series import SeriesStack
    from viewer.ui.presentation_items import PresentationOverlay
    from viewer.ui.viewer.viewport import Viewport

    path = shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    image = pydicom.dcmread(path, stop_before_pixels=True)
    items = [
        GraphicItem("POLYLINE", ((10.5, 20.5), (30.5, 40.5)), "PIXEL", color=(255, 0, 0)),
        TextItem("note", anchor=(64.0, 64.0), anchor_visible=True),
    ]
    ps = build_gsps([image], GspsContent(items=items, window_center=40, window_width=400))
    ps.ShutterShape = "CIRCULAR"
    ps.CenterOfCircularShutter = [64, 64]
    ps.RadiusOfCircularShutter = 50

    stack = SeriesStack.from_paths([str(path)])
    cache = FrameCache(stack.load_key)
    viewport = Viewport(cache)
    qtbot.addWidget(viewport)
    viewport.resize(256, 256)
    viewport.set_stack(stack, 0)
    overlay = PresentationOverlay(viewport)
    overlay.apply(ps)
    qtbot.waitUntil(lambda: bool(viewport._state_items), timeout=5000)
    drawn = viewport._state_items
    kinds = [type(i).__name__ for i in drawn]
    assert "QGraphicsSimpleTextItem" in kinds
    shown = np.asarray(viewport.image_item.image)
    assert shown[2, 2] == 0 and shown[64, 64] > 0  # the circular shutter is burned into the bitmap
    paths = [i.path() for i in drawn if type(i).__name__ == "QGraphicsPathItem"]
    line = next(p for p in paths if p.elementCount() == 2 and p.elementAt(0).x == 10.5)
    start, end = line.elementAt(0), line.elementAt(1)
    assert (start.x, start.y, end.x, end.y) == (10.5, 20.5, 30.5, 40.5)  # image pixel coordinates
    assert all(i.parentItem() is viewport.image_item for i in drawn)
    assert viewport.voi is not None and viewport.voi.center == 40
    overlay.apply(None)
    assert not viewport._state_items


def test_viewer_displays_through_the_states_own_modality_lut(qtbot, tmp_path):
    """The state's Rescale replaces the image's: the viewer's pixels equal the reference GSPS renderer's."""
    import numpy as np

    from viewer.render import gsps
    from viewer.render.cache import FrameCache
    from viewer.render.decode import ImageSource
    from viewer.render.series import SeriesStack
    from viewer.ui.presentation_items import PresentationOverlay
    from viewer.ui.viewer.viewport import Viewport

    path = shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    image = pydicom.dcmread(path, stop_before_pixels=True)
    ps = build_gsps([image], GspsContent(items=[], window_center=1100, window_width=800))
    ps.RescaleSlope, ps.RescaleIntercept, ps.RescaleType = 2, -100, "US"  # the image says 1 and -1024

    stack = SeriesStack.from_paths([str(path)])
    viewport = Viewport(FrameCache(stack.load_key))
    qtbot.addWidget(viewport)
    viewport.resize(256, 256)
    viewport.set_stack(stack, 0)
    qtbot.waitUntil(lambda: viewport.displayed_index == 0, timeout=5000)
    overlay = PresentationOverlay(viewport)
    overlay.apply(ps)
    reference = gsps.render_grayscale(ps, ImageSource(str(path)), 0)
    shown = np.asarray(viewport.image_item.image)
    assert shown.shape == reference.shape
    assert np.abs(shown.astype(int) - reference.astype(int)).max() <= 1
    overlay.apply(None)  # back to the image's own rescale
    assert viewport.presentation is None
    assert np.array_equal(
        np.asarray(viewport.image_item.image), viewport.display_list.lut(ImageSource(str(path)).frame(0))
    )
