"""Issue 15 finding 10 (Ctrl+T): the tags of the image on screen when the viewer is in use, not the browser's selection.

The main window is real (store, browser, viewer, Tools ▸ Tags… with its Ctrl+T shortcut); the shortcut's action is
triggered with the keyboard focus in the viewer, then in the study browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QTreeWidgetItem

from tests.render.test_stack_cache_measure import make_ct_series
from viewer.core.context import AppContext
from viewer.ui.browser import ROLE_KIND, ROLE_UID
from viewer.ui.main_window import MainWindow
from viewer.ui.workers import wait_for_workers


@pytest.fixture
def window(qtbot, tmp_path: Path, lightbox_home: Path):
    ctx = AppContext.open(lightbox_home)
    for path in make_ct_series(tmp_path, 4):
        ctx.store.add_file(path)
    ctx.store.add_file(get_testdata_file("examples_ybr_color.dcm"))  # a multi-frame US in a second study
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    wait_for_workers(10000)
    for dialog in list(getattr(win, "tag_dialogs", [])):
        dialog.close()
    win.close()
    ctx.store.close()


def _series_uid(window: MainWindow, modality: str) -> str:
    store = window.ctx.store
    for study in store.studies():
        for series in store.series_for_study(study.study_uid):
            if series.modality == modality:
                return series.series_uid
    raise LookupError(modality)


def _tags_action(window: MainWindow) -> QAction:
    for action in window.menus["Tools"].actions():
        if action.shortcut() == QKeySequence("Ctrl+T"):
            return action
    raise LookupError("Ctrl+T")


def _series_item(window: MainWindow, series_uid: str) -> QTreeWidgetItem | None:
    tree = window.browser.tree
    stack = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        if item.data(0, ROLE_KIND) == "series" and item.data(0, ROLE_UID) == series_uid:
            return item
        stack.extend(item.child(i) for i in range(item.childCount()))
    return None


def _loaded_uid(dialog) -> str:
    for node in dialog.browser.nodes:
        if node.keyword == "SOPInstanceUID":
            return node.value
    return ""


def test_ctrl_t_shows_the_tags_of_the_image_on_screen(window: MainWindow, qtbot) -> None:
    us_uid = _series_uid(window, "US")
    window.browser.refresh()
    window.browser.expand_all()  # series are listed when their study is expanded
    qtbot.waitUntil(lambda: _series_item(window, us_uid) is not None, timeout=10000)
    item = _series_item(window, us_uid)
    assert item is not None
    window.browser.tree.setCurrentItem(item)  # the browser's selection is the US series

    window.open_series(_series_uid(window, "CT"))
    viewport = window.viewer_area.active
    qtbot.waitUntil(lambda: viewport.order_settled, timeout=5000)
    viewport.set_index(2)
    on_screen = viewport.stack[2].sop_instance_uid
    viewport.setFocus()
    qtbot.waitUntil(lambda: viewport.hasFocus(), timeout=2000)
    _tags_action(window).trigger()
    dialog = window.tag_dialogs[-1]
    qtbot.waitUntil(lambda: bool(dialog.browser.nodes), timeout=10000)
    assert _loaded_uid(dialog) == on_screen
    assert on_screen in dialog.windowTitle()

    # with the focus in the study browser, Ctrl+T is about the browser's selection again
    dialog.close()
    window.activateWindow()
    window.browser.tree.setFocus()
    qtbot.waitUntil(lambda: window.browser.tree.hasFocus(), timeout=2000)
    _tags_action(window).trigger()
    browser_dialog = window.tag_dialogs[-1]
    qtbot.waitUntil(lambda: bool(browser_dialog.browser.nodes), timeout=10000)
    us_instance = window.ctx.store.instances_for_series(us_uid)[0].sop_instance_uid
    assert _loaded_uid(browser_dialog) == us_instance


def test_ctrl_t_on_a_multiframe_image_names_the_frame_on_screen(window: MainWindow, qtbot) -> None:
    window.open_series(_series_uid(window, "US"))
    viewport = window.viewer_area.active
    viewport.set_index(4)
    viewport.setFocus()
    qtbot.waitUntil(lambda: viewport.hasFocus(), timeout=2000)
    assert window.current_image() == (viewport.stack[4].sop_instance_uid, 4)
    _tags_action(window).trigger()
    dialog = window.tag_dialogs[-1]
    assert dialog.windowTitle().endswith("(frame 5)")
    assert dialog.browser.focus_path == "(5200,9230)[4]"
    qtbot.waitUntil(lambda: bool(dialog.browser.nodes), timeout=10000)
    # this file has no per-frame functional groups: nothing to select, and the whole header is shown
    assert not dialog.browser.select_path("(5200,9230)[4]")
    assert "(0028,0008)" in dialog.browser.visible_paths()  # Number of Frames
