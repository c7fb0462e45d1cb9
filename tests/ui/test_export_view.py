"""File ▸ Export view as image / Copy view / Export series as video take what the active viewport composes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication

from tests.render.test_stack_cache_measure import make_ct_series
from viewer.core.context import AppContext
from viewer.render.displaylist import rasterize

# The view model (viewer.render.view: ViewState, compose) is what these tests hold export to.
compose = pytest.importorskip("viewer.render.view").compose


@pytest.fixture
def window(qtbot, tmp_path: Path, lightbox_home: Path):
    from viewer.ui.main_window import MainWindow

    ctx = AppContext.open(lightbox_home)
    (tmp_path / "ct").mkdir()
    for path in make_ct_series(tmp_path / "ct", 5):
        ctx.store.add_file(path)
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    (study,) = ctx.store.studies()
    (series,) = ctx.store.series_for_study(study.study_uid)
    window.open_series(series.series_uid)
    viewport = window.viewer_area.active
    qtbot.waitUntil(lambda: viewport.stack is not None and viewport.displayed_index is not None, timeout=10000)
    # A view that differs from the default in every way export must keep.
    viewport.set_rotation(90)
    viewport.set_flip(horizontal=True)
    viewport.set_invert(True)
    yield window
    window.viewer_area.close_cache()
    window.close()
    ctx.store.close()


def composed(viewport) -> np.ndarray:
    """What the viewport paints: its view state composed at the size its zoom refers to."""
    width, height = viewport.view_size()
    return rasterize(compose(viewport.view_state(), presentation=viewport.presentation), width, height)[:, :, :3]


def test_export_view_as_png_holds_the_composed_pixels(qtbot, window, tmp_path: Path) -> None:
    from PIL import Image

    from viewer.ui.export_view import export_view_image

    expected = composed(window.viewer_area.active)
    path = tmp_path / "view.png"
    worker = export_view_image(window, path)
    qtbot.waitUntil(lambda: path.exists(), timeout=30000)
    saved = np.asarray(Image.open(path).convert("RGB"))
    assert saved.shape == expected.shape and np.array_equal(saved, expected)
    # The view is not the plain image: rotation, flip and inversion are in the file.
    plain = rasterize(compose(_default_state(window.viewer_area.active)), expected.shape[1], expected.shape[0])
    assert not np.array_equal(saved, plain[:, :, :3])
    assert worker is not None
    jpeg = tmp_path / "view.jpg"
    export_view_image(window, jpeg)
    qtbot.waitUntil(lambda: jpeg.exists(), timeout=30000)
    assert np.abs(np.asarray(Image.open(jpeg).convert("RGB")).astype(int) - expected.astype(int)).mean() < 2.0


def _default_state(viewport):
    import dataclasses

    state = viewport.view_state()
    changes = {name: value for name, value in (("rotation", 0), ("flip_h", False), ("invert", False))}
    known = {f.name for f in dataclasses.fields(state)}
    return dataclasses.replace(state, **{k: v for k, v in changes.items() if k in known})


def test_copy_view_puts_the_composed_image_on_the_clipboard(qtbot, window) -> None:
    from PySide6.QtGui import QAction

    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    expected = composed(window.viewer_area.active)
    actions = {a.text(): a for a in window.menus["File"].actions() if isinstance(a, QAction)}
    assert actions["&Copy view"].shortcut().toString() == "Ctrl+C"
    actions["&Copy view"].trigger()
    qtbot.waitUntil(lambda: not clipboard.image().isNull(), timeout=30000)
    image = clipboard.image().convertToFormat(clipboard.image().Format.Format_RGB888)
    assert (image.width(), image.height()) == (expected.shape[1], expected.shape[0])
    data = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    got = data[:, : image.width() * 3].reshape(image.height(), image.width(), 3)
    assert np.array_equal(got, expected)


def test_series_exports_as_mp4_with_the_view_applied(qtbot, window, tmp_path: Path) -> None:
    import av

    from viewer.print.views import view_pixels
    from viewer.ui.export_view import export_series_video, series_views, shown_image

    viewport = window.viewer_area.active
    current = shown_image(viewport)
    assert current is not None
    expected = [view_pixels(view) for view in series_views(viewport, current)]
    path = tmp_path / "series.mp4"
    export_series_video(window, path, fps=5)
    qtbot.waitUntil(lambda: path.exists(), timeout=60000)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(viewport.stack) == 5
    height, width = expected[0].shape[:2]
    for got, want in zip(frames, expected):
        assert got.shape == (height + height % 2, width + width % 2, 3)
        assert np.abs(got[:height, :width].astype(int) - want.astype(int)).mean() < 4.0
