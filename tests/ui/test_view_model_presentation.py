"""Finding 10 (part): opening a presentation state lands on an image it references, and a state the user
saves is confirmed and then drawn once (by the state, not also by the viewport's own measurements)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from viewer.core.context import AppContext
from viewer.render.displaylist import GraphicItem
from viewer.render.gsps_writer import GspsContent, build_gsps


def _store_series(ctx: AppContext, tmp_path: Path) -> list[pydicom.Dataset]:
    images = []
    for number in (1, 2, 3):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{number}"
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [0, 0, number * 5]
        ctx.store.add_dataset(ds)
        images.append(ds)
    return images


def _area(qtbot, ctx):
    from viewer.ui.viewer import ViewerArea

    area = ViewerArea(ctx)
    qtbot.addWidget(area)
    area.resize(600, 500)
    area.show()
    return area


def test_opening_a_state_lands_on_the_first_image_it_references(qtbot, tmp_path):
    ctx = AppContext.open(tmp_path / "home")
    images = _store_series(ctx, tmp_path)
    line = GraphicItem("POLYLINE", ((10.5, 20.5), (30.5, 40.5)), "PIXEL", color=(255, 0, 0))
    header = pydicom.dcmread(ctx.store.instance(images[2].SOPInstanceUID).path, stop_before_pixels=True)
    ps = build_gsps([header], GspsContent(items=[line], window_center=40, window_width=400, label="THIRD"))
    ctx.store.add_dataset(ps)

    area = _area(qtbot, ctx)
    viewport = area.open_series(images[0].SeriesInstanceUID)
    qtbot.waitUntil(lambda: viewport.order_settled, timeout=10000)
    menu = area.presentation_menu(viewport)
    menu.prefer(ps.SOPInstanceUID)
    qtbot.waitUntil(lambda: viewport.presentation is not None, timeout=10000)
    shown = viewport.stack[viewport.displayed_index]
    assert shown.sop_instance_uid == images[2].SOPInstanceUID
    assert "THIRD" in menu.currentText() and viewport._state_items
    area.close_cache()


def test_saved_state_is_confirmed_and_drawn_once(qtbot, tmp_path):
    from viewer.render.measure import Distance

    ctx = AppContext.open(tmp_path / "home")
    images = _store_series(ctx, tmp_path)
    area = _area(qtbot, ctx)
    viewport = area.open_series(images[0].SeriesInstanceUID)
    qtbot.waitUntil(lambda: viewport.order_settled and viewport.displayed_index is not None, timeout=10000)
    viewport.add_measurement(Distance((10.5, 20.5), (60.5, 20.5)))
    menu = area.presentation_menu(viewport)
    messages: list[str] = []
    assert area.save_annotations(on_saved=lambda result: messages.append(menu.adopt_saved(result)))
    qtbot.waitUntil(lambda: bool(messages) and viewport.presentation is not None, timeout=10000)
    assert "saved" in messages[0].lower()
    assert not viewport.measurements  # the state draws them now: once
    assert any(type(i).__name__ == "QGraphicsPathItem" for i in viewport._state_items)
    area.close_cache()
