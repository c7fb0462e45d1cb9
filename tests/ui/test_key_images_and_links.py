"""Documents that point at images open them in the viewer: KO as key images, PR with its state, SR links."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.core.test_presentation import _code, key_object, multiframe_image, ps_for
from viewer.core.context import AppContext
from viewer.documents.sr import ImageRegion


@pytest.fixture
def window(qtbot, tmp_path: Path):
    from viewer.ui.main_window import MainWindow

    ctx = AppContext.open(tmp_path / "home")
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    yield win
    win.close()


def _study(window):
    store = window.ctx.store
    single = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    multi = multiframe_image(4)
    store.add_dataset(single)
    store.add_dataset(multi)
    return store, single, multi


def test_key_object_opens_as_key_images_in_the_listed_order(window, qtbot) -> None:
    store, single, multi = _study(window)
    ko = key_object([(multi, [3, 1]), (single, None)], _code("113004", "DCM", "For Teaching"), "Look here")
    store.add_dataset(ko)
    window.open_instance(ko.SOPInstanceUID)
    qtbot.waitUntil(lambda: getattr(window, "key_images_shown", None) is not None, timeout=10000)
    viewport = window.viewer_area.active
    shown = [(ref.sop_instance_uid, ref.frame) for ref in viewport.stack.slices]
    assert shown == [(multi.SOPInstanceUID, 2), (multi.SOPInstanceUID, 0), (single.SOPInstanceUID, 0)]
    assert window.key_images_shown.title == "For Teaching"
    assert "For Teaching" in window.statusBar().currentMessage() and "Look here" in window.statusBar().currentMessage()


def test_presentation_state_series_opens_its_images_with_that_state(window, qtbot) -> None:
    store, single, _multi = _study(window)
    chosen = ps_for(single, "CHOSEN", "20200101", "080000")
    newer = ps_for(single, "NEWER", "20250101", "080000")
    store.add_dataset(chosen)
    store.add_dataset(newer)
    window.open_instance(chosen.SOPInstanceUID)
    area = window.viewer_area
    qtbot.waitUntil(
        lambda: area.active.stack is not None and "CHOSEN" in area.presentation_menu().currentText(), timeout=10000
    )
    assert area.active.stack.slices[0].sop_instance_uid == single.SOPInstanceUID


def test_report_link_opens_the_image_at_its_frame_with_the_region_marked(window, qtbot) -> None:
    from viewer.ui.viewer.area import REGION_LAYER

    _store, _single, multi = _study(window)
    region = ImageRegion("CIRCLE", ((32.0, 32.0), (42.0, 32.0)))
    viewport = window.viewer_area.open_image(multi.SOPInstanceUID, frame=3, region=region)
    ref = viewport.stack.slices[viewport.index]
    assert (ref.sop_instance_uid, ref.frame) == (multi.SOPInstanceUID, 2)
    qtbot.waitUntil(lambda: bool(viewport._overlay_items.get(REGION_LAYER)), timeout=5000)
    (item,) = viewport._overlay_items[REGION_LAYER]
    bounds = item.path().boundingRect()
    assert (bounds.center().x(), bounds.center().y(), bounds.width()) == pytest.approx((32.0, 32.0, 20.0))
    viewport.set_index((viewport.index + 1) % len(viewport.stack))
    qtbot.waitUntil(lambda: not viewport._overlay_items.get(REGION_LAYER), timeout=5000)
