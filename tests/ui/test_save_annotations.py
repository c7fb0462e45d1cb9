"""Measurements drawn in the viewer are saved as a standard GSPS, pass dcmpschk, and come back when reopened."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from tests.render.test_gsps_roundtrip import dcmpschk_passes
from viewer.core.context import AppContext
from viewer.render.displaylist import GraphicItem, TextItem
from viewer.render.gsps import annotations
from viewer.render.measure import Distance, EllipseRoi


def test_viewer_measurements_round_trip_through_a_saved_presentation_state(qtbot, tmp_path: Path) -> None:
    from viewer.ui.viewer import ViewerArea

    ctx = AppContext.open(tmp_path / "home")
    image = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ctx.store.add_dataset(image)
    area = ViewerArea(ctx)
    qtbot.addWidget(area)
    area.resize(600, 500)
    viewport = area.open_series(image.SeriesInstanceUID)
    viewport.add_measurement(Distance((10.5, 20.5), (60.5, 20.5)))
    viewport.add_measurement(EllipseRoi((64.0, 64.0), (20.0, 10.0)))

    saved = []
    assert area.save_annotations(on_saved=saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=10000)
    ok, output = dcmpschk_passes(saved[0].path)
    assert ok, output

    ps = pydicom.dcmread(saved[0].path)
    assert not any(element.tag.is_private for element in ps.iterall())
    items = annotations(ps, image.SOPInstanceUID, 0)
    graphics = [i for i in items if isinstance(i, GraphicItem)]
    assert [(g.kind, g.points[:2]) for g in graphics] == [
        ("POLYLINE", ((10.5, 20.5), (60.5, 20.5))),
        ("ELLIPSE", ((44.0, 64.0), (84.0, 64.0))),
    ]
    texts = [i.text for i in items if isinstance(i, TextItem)]
    assert any(t.endswith("mm") for t in texts)  # CT_small has Pixel Spacing: the distance is in mm

    # Reopening the series applies the saved state (the newest) and draws its annotations.
    viewport.clear_measurements()
    area.open_series(image.SeriesInstanceUID)
    menu = area.presentation_menu(viewport)
    qtbot.waitUntil(lambda: menu.count() == 2 and bool(viewport._state_items), timeout=10000)
    area.close_cache()
