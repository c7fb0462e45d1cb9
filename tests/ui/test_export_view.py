"""File ▸ Export view as image / Copy view / Export series as video take what the active viewport composes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication

from tests.render.test_stack_cache_measure import make_ct_series
from viewer.core.context import AppContext
from viewer.render.displaylist import rasterize
from viewer.render.measure import Distance
from viewer.render.view import compose


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
    viewport.adjust_window(30.0, 10.0)
    viewport.set_zoom(viewport.zoom_factor() * 1.3)
    viewport.add_measurement(Distance((20.5, 30.5), (100.5, 60.5)))
    yield window
    window.viewer_area.close_cache()
    window.close()
    ctx.store.close()


def composed(viewport, scale: int = 1) -> np.ndarray:
    """What the viewport paints: its view state composed at the size its zoom refers to (times `scale`,
    the zoom and the text scaled with it)."""
    width, height = viewport.view_size()
    state = viewport.view_state()
    assert state.zoom is not None
    state = state.replace(zoom=state.zoom * scale)
    return rasterize(compose(state), width * scale, height * scale, font_size=12 * scale)


def test_export_view_as_png_holds_the_composed_pixels(qtbot, window, tmp_path: Path) -> None:
    from PIL import Image

    from viewer.ui.export_view import export_view_image

    viewport = window.viewer_area.active
    state = viewport.view_state()
    assert state.rotation == 90 and state.flip_h and state.invert and state.zoom is not None and state.items
    expected = composed(viewport)
    path = tmp_path / "view.png"
    assert export_view_image(window, path) is not None
    qtbot.waitUntil(lambda: path.exists(), timeout=30000)
    saved = np.asarray(Image.open(path).convert("RGB"))
    assert saved.shape == expected.shape and np.array_equal(saved, expected)
    # The view is not the plain image: the reader's settings are in the file.
    width, height = viewport.view_size()
    plain = rasterize(compose(state.replace(rotation=0, flip_h=False, invert=False, items=())), width, height)
    assert np.abs(saved.astype(int) - plain.astype(int)).mean() > 20
    # At a chosen size: the same part of the image, drawn at that size.
    large = tmp_path / "large.png"
    export_view_image(window, large, size=(2 * width, 2 * height))
    qtbot.waitUntil(lambda: large.exists(), timeout=30000)
    assert np.array_equal(np.asarray(Image.open(large).convert("RGB")), composed(viewport, 2))
    jpeg = tmp_path / "view.jpg"
    export_view_image(window, jpeg)
    qtbot.waitUntil(lambda: jpeg.exists(), timeout=30000)
    assert np.abs(np.asarray(Image.open(jpeg).convert("RGB")).astype(int) - expected.astype(int)).mean() < 2.0


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

    from viewer.ui.export_view import export_series_video

    viewport = window.viewer_area.active
    state = viewport.view_state()
    width, height = viewport.view_size()
    # Every image of the stack in stack order with the reader's settings; the measurement only on its image.
    expected = [
        rasterize(
            compose(
                state.replace(
                    path=ref.path,
                    sop_instance_uid=ref.sop_instance_uid,
                    frame=ref.frame,
                    items=state.items if index == viewport.index else (),
                )
            ),
            width,
            height,
        )
        for index, ref in enumerate(viewport.stack.slices)
    ]
    path = tmp_path / "series.mp4"
    worker = export_series_video(window, path, fps=5)
    assert worker is not None and window.video_progress is not None
    qtbot.waitUntil(lambda: worker.done, timeout=60000)
    assert window.statusBar().currentMessage() == f"Saved 5 frames to {path}"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (width + width % 2, height + height % 2)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(viewport.stack) == 5
    for got, want in zip(frames, expected):
        assert got.shape == (height + height % 2, width + width % 2, 3)
        assert np.abs(got[:height, :width].astype(int) - want.astype(int)).mean() < 4.0


def test_video_export_reports_progress_and_a_cancel_leaves_no_file(window, tmp_path: Path) -> None:
    from viewer.core.tasks import Cancelled, CancelToken, Progress
    from viewer.print.views import write_series_video
    from viewer.ui.export_view import series_views, shown_image

    viewport = window.viewer_area.active
    current = shown_image(viewport)
    assert current is not None
    views = series_views(viewport, current)
    seen: list[Progress] = []
    path = tmp_path / "all.mp4"
    assert write_series_video(path, views, fps=5, progress=seen.append) == 5
    assert [(p.done, p.total) for p in seen] == [(i, 5) for i in range(1, 6)]

    # Cancelled after the second frame (as the progress dialog's Cancel does): no file, not even a temporary.
    token = CancelToken()
    cut = tmp_path / "cut.mp4"

    def cancel_after_two(progress: Progress) -> None:
        if progress.done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        write_series_video(cut, views, fps=5, cancel=token, progress=cancel_after_two)
    assert not cut.exists() and not list(tmp_path.glob(".cut*"))
    # Cancelled before the first frame.
    with pytest.raises(Cancelled):
        write_series_video(cut, views, fps=5, cancel=token)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == ["all.mp4"]
