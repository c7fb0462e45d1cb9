"""The viewer applies the newest presentation state for a stored series by default, and keeps it while scrolling."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from viewer.core.context import AppContext
from viewer.render.displaylist import GraphicItem
from viewer.render.gsps_writer import GspsContent, build_gsps


def _series_of_three(tmp_path: Path) -> list[pydicom.Dataset]:
    images = []
    for number in (1, 2, 3):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{number}"
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [0, 0, number * 5]
        path = tmp_path / f"ct{number}.dcm"
        ds.save_as(path)
        images.append(ds)
    return images


def test_newest_state_is_applied_by_default_and_survives_scrolling(qtbot, tmp_path: Path) -> None:
    from viewer.ui.presentation_menu import NONE_TEXT
    from viewer.ui.viewer import ViewerArea

    ctx = AppContext.open(tmp_path / "home")
    images = _series_of_three(tmp_path)
    for ds in images:
        ctx.store.add_dataset(ds)
    headers = [pydicom.dcmread(tmp_path / f"ct{n}.dcm", stop_before_pixels=True) for n in (1, 2, 3)]
    older = build_gsps(headers, GspsContent(items=[], window_center=100, window_width=200, label="OLDER"))
    older.PresentationCreationDate, older.PresentationCreationTime = "20200101", "080000"
    line = GraphicItem("POLYLINE", ((10.5, 20.5), (30.5, 40.5)), "PIXEL", color=(255, 0, 0))
    newer = build_gsps(headers, GspsContent(items=[line], window_center=40, window_width=400, label="NEWER"))
    newer.PresentationCreationDate, newer.PresentationCreationTime = "20240101", "080000"
    ctx.store.add_dataset(older)
    ctx.store.add_dataset(newer)

    area = ViewerArea(ctx)
    qtbot.addWidget(area)
    area.resize(600, 500)
    area.show()
    viewport = area.open_series(images[0].SeriesInstanceUID)
    menu = area.presentation_menu(viewport)
    qtbot.waitUntil(lambda: menu.count() == 3 and bool(viewport._state_items), timeout=10000)
    assert menu.currentText() != NONE_TEXT and "NEWER" in menu.currentText()
    assert viewport.voi.center == 40 and viewport.voi.width == 400

    # The user's own window survives scrolling within the series the state covers.
    viewport.set_voi(type(viewport.voi)(center=10, width=50))
    viewport.set_index(1)
    qtbot.waitUntil(lambda: menu._image is not None and menu._image[0].endswith(".2"), timeout=5000)
    qtbot.wait(300)
    assert "NEWER" in menu.currentText()
    assert viewport.voi.center == 10

    # Choosing "No presentation state" removes the overlay.
    menu.setCurrentIndex(0)
    qtbot.waitUntil(lambda: not viewport._state_items, timeout=5000)
    area.close_cache()
