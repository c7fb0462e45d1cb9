"""Render/viewer benchmark (issue 3): prints its figures; not a test.

On a generated 500-slice 512×512 CT (in a temporary store):
* time to first image after `ViewerArea.open_series`,
* scrolling through the whole stack with a window change on every frame, uncached (decode on the cache
  workers) and cached,
* cine on a generated 100-frame 1024×1024 8-bit XA (first loop decodes, later loops cached),
* peak RSS and the frame cache's bytes against the series' 16-bit pixel size,
* a 2×2 layout: four generated CT series (--series-2x2-slices each) scrolled together, cached, with a window
  change on every frame; fps per viewport (each of the four advances one frame per step),
* peers measured in the same run, so ratios can be quoted on a noisy machine: a plain LUT path (the same
  cached frames, a window table built per step over the stored range, `np.take`, a pyqtgraph ImageItem in a
  plain GraphicsView of the same size; 2×2: four of them in one grid) for first image, cached scroll with W/L
  and 2×2; DCMTK dcmj2pnm rendering the same slices to PGM, per frame.

Each timed figure is the median of --repeat runs. Every step of ours and of the peer costs one paint
(the event loop's, else a synchronous one); both magnify bilinearly (the viewer's display default).
Targets (issue 15, 512² 16-bit CT): first image ≤ 25 ms, cached scroll with a W/L change per step ≥ 120 fps,
2×2 with four series scrolling together ≥ 60 fps each; cine ≥ 30 fps.
`--quick` runs everything on tiny series (a smoke run: its figures mean nothing).
Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/render_bench.py [--slices 500] [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.paints import PaintCounter
from viewer.core.settings import Settings
from viewer.core.store import StudyStore


class _Ctx:
    def __init__(self, store: StudyStore) -> None:
        self.store = store
        self.settings = Settings()
        self.settings.viewer.cache_megabytes = 1024


def _base(modality: str, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientName = "Bench^Render"
    ds.PatientID = "BENCH1"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = "20240101"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.FrameOfReferenceUID = study_uid[:60] + ".9"
    return ds


def make_ct(store: StudyStore, slices: int, size: int = 512, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    study_uid, series_uid = generate_uid(), generate_uid()
    yy, xx = np.mgrid[:size, :size]
    body = ((xx - size // 2) ** 2 + (yy - size // 2) ** 2) < (size * 200 // 512) ** 2
    with store.batch():
        for k in range(slices):
            ds = _base("CT", study_uid, series_uid)
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [-250.0, -250.0, -k * 1.0]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.SliceLocation = -k * 1.0
            ds.SliceThickness = 1.0
            ds.PixelSpacing = [0.98, 0.98]
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.WindowCenter, ds.WindowWidth = 40, 400
            pixels = np.where(body, 1024 + 40, 0) + rng.integers(-30, 30, (size, size))
            ds.PixelData = pixels.astype(np.int16).tobytes()
            store.add_dataset(ds)
    return series_uid


def make_xa(store: StudyStore, frames: int, size: int = 1024) -> str:
    rng = np.random.default_rng(2)
    study_uid, series_uid = generate_uid(), generate_uid()
    ds = _base("XA", study_uid, series_uid)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = size
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = 33.33
    ds.RecommendedDisplayFrameRate = 30
    ds.CineRate = 30
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    data = rng.integers(0, 255, (frames, size, size), dtype=np.uint8)
    ds.PixelData = data.tobytes()
    store.add_dataset(ds)
    return series_uid


def _wait_shown(app, viewport, index: int, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while viewport.displayed_index != index:
        app.processEvents()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"frame {index} not shown")
        time.sleep(0.0005)


_COUNTERS: dict[int, PaintCounter] = {}


def _counter(widget) -> PaintCounter:
    counter = _COUNTERS.get(id(widget))
    if counter is None:
        counter = _COUNTERS[id(widget)] = PaintCounter()
        widget.installEventFilter(counter)
    return counter


def paint_once(app, *widgets) -> None:
    """Let the event loop dispatch the scene's updates and paint, as it does on screen; paint synchronously only
    the widgets it did not paint (so every step of ours and of the peer costs one paint of each view)."""
    before = [_counter(w).count for w in widgets]
    app.processEvents()
    for widget, count in zip(widgets, before, strict=True):
        if _counter(widget).count == count:
            widget.repaint()


def _paint(app, viewport) -> None:
    paint_once(app, viewport.view.viewport())


def scroll(app, viewport, *, with_window: bool) -> float:
    from viewer.render.lut import Window

    n = len(viewport.stack)
    start = time.perf_counter()
    for i in range(n):
        if with_window:
            viewport.voi = Window(40 + (i % 50), 400 + (i % 30))
        viewport.set_index(i)
        _wait_shown(app, viewport, i)
        _paint(app, viewport)
    return n / (time.perf_counter() - start)


def _wait_order(app, viewport, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not viewport.order_settled and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)


def _fill_cache(area, viewports, timeout: float = 120.0) -> None:
    keys = [v.stack.key(i) for v in viewports for i in range(len(v.stack))]
    deadline = time.perf_counter() + timeout
    while any(area.cache.get(k) is None for k in keys) and time.perf_counter() < deadline:
        area.cache.prefetch(keys)
        time.sleep(0.05)


def scroll_2x2(app, area, viewports, *, with_window: bool) -> float:
    """Frames per second of each viewport when all four step one frame together (one repaint of the grid)."""
    from viewer.render.lut import Window

    n = min(len(v.stack) for v in viewports)
    start = time.perf_counter()
    for i in range(n):
        for v in viewports:
            if with_window:
                v.voi = Window(40 + (i % 50), 400 + (i % 30))
            v.set_index(i)
        for v in viewports:
            _wait_shown(app, v, i)
        paint_once(app, *(v.view.viewport() for v in viewports))
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- the plain peer
class PlainPeer:
    """The plain LUT path: a window table over the stored range, `np.take`, one pyqtgraph ImageItem per tile."""

    def __init__(self, tiles: int, size: tuple[int, int]) -> None:
        import pyqtgraph as pg
        from PySide6.QtGui import QPainter

        self.view = pg.GraphicsView()
        self.view.setBackground("k")
        # bilinear magnification, as the viewer's display default (nearest neighbour costs less)
        self.view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        layout = pg.GraphicsLayout()
        self.view.setCentralItem(layout)
        self.items: list = []
        columns = 2 if tiles > 1 else 1
        for k in range(tiles):
            box = layout.addViewBox(row=k // columns, col=k % columns, lockAspect=True, invertY=True)
            box.setMenuEnabled(False)
            item = pg.ImageItem(axisOrder="row-major")
            box.addItem(item)
            self.items.append((box, item))
        self.view.resize(*size)
        self.view.show()

    @staticmethod
    def table(header, center: float, width: float, lo: int, hi: int) -> np.ndarray:
        values = np.arange(lo, hi + 1, dtype=np.float32) * float(header.get("RescaleSlope", 1)) + float(
            header.get("RescaleIntercept", 0)
        )
        scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
        return np.clip(scaled, 0, 255).astype(np.uint8)

    def show(self, tile: int, frame: np.ndarray, table: np.ndarray, lo: int) -> None:
        box, item = self.items[tile]
        pixels = np.take(table, frame.astype(np.int32) - lo)
        first = item.image is None
        item.setImage(pixels, autoLevels=False, levels=None)
        if first:
            box.autoRange(padding=0)

    def paint(self, app) -> None:
        paint_once(app, self.view.viewport())

    def close(self) -> None:
        self.view.close()


def peer_first_image(app, peer: PlainPeer, path: str) -> float:
    """Read one file (pydicom), window it by its own Window Center/Width, show it in an open view: ms."""
    import pydicom

    peer.items[0][1].clear()
    peer.paint(app)
    t0 = time.perf_counter()
    ds = pydicom.dcmread(path)
    frame = ds.pixel_array
    lo, hi = int(frame.min()), int(frame.max())
    peer.show(0, frame, PlainPeer.table(ds, float(ds.WindowCenter), float(ds.WindowWidth), lo, hi), lo)
    peer.paint(app)
    return (time.perf_counter() - t0) * 1000


def peer_scroll(app, frames: list[np.ndarray], header, size: tuple[int, int]) -> float:
    peer = PlainPeer(1, size)
    lo = min(int(f.min()) for f in frames)
    hi = max(int(f.max()) for f in frames)
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        peer.show(0, frame, PlainPeer.table(header, 40 + (i % 50), 400 + (i % 30), lo, hi), lo)
        peer.paint(app)
    fps = len(frames) / (time.perf_counter() - start)
    peer.close()
    return fps


def peer_scroll_2x2(app, series: list[list[np.ndarray]], header, size: tuple[int, int]) -> float:
    peer = PlainPeer(4, size)
    lo = min(int(f.min()) for frames in series for f in frames)
    hi = max(int(f.max()) for frames in series for f in frames)
    n = min(len(frames) for frames in series)
    start = time.perf_counter()
    for i in range(n):
        for tile, frames in enumerate(series):
            peer.show(tile, frames[i], PlainPeer.table(header, 40 + (i % 50), 400 + (i % 30), lo, hi), lo)
        peer.paint(app)
    fps = n / (time.perf_counter() - start)
    peer.close()
    return fps


def _frames(area, viewport) -> list[np.ndarray]:
    return [area.cache.get_blocking(viewport.stack.key(i)) for i in range(len(viewport.stack))]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def cine(app, viewport, frames: int) -> float:
    """Frames shown per second over `frames` cine steps run as fast as frames arrive (timer at 1 ms)."""
    viewport.set_index(0)
    _wait_shown(app, viewport, 0)
    shown = viewport.frames_shown
    viewport.start_cine(1000.0)
    start = time.perf_counter()
    while viewport.frames_shown - shown < frames and time.perf_counter() - start < 60:
        app.processEvents()
        _paint(app, viewport)
    viewport.stop_cine()
    return (viewport.frames_shown - shown) / (time.perf_counter() - start)


def dcmtk_per_frame_ms(paths: list[str]) -> float | None:
    tool = shutil.which("dcmj2pnm")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        for i, path in enumerate(paths):
            subprocess.run(
                [tool, "--write-8-bit-pnm", "+Wi", "1", path, f"{out}/{i}.pgm"], check=True, capture_output=True
            )
        return (time.perf_counter() - start) * 1000 / len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--series-2x2-slices", type=int, default=100, help="slices of each of the 2×2 series")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timed figure (the median is printed)")
    parser.add_argument("--no-cine", action="store_true", help="skip the XA cine figures")
    parser.add_argument("--keep", type=Path, help="keep the generated store in this folder")
    parser.add_argument("--quick", action="store_true", help="tiny series: checks the bench runs, figures mean nothing")
    args = parser.parse_args()
    ct_size, xa_size = 512, 1024
    if args.quick:
        args.slices, args.frames, args.series_2x2_slices, args.repeat = 12, 6, 8, 2
        ct_size, xa_size = 64, 64
    repeat = max(1, args.repeat)

    root = args.keep or Path(tempfile.mkdtemp(prefix="render-bench-"))
    store = StudyStore(root / "store", durable=False)
    t = time.perf_counter()
    ct_uid = make_ct(store, args.slices, ct_size)
    xa_uid = None if args.no_cine else make_xa(store, args.frames, xa_size)
    grid_uids = [make_ct(store, args.series_2x2_slices, ct_size, seed=10 + k) for k in range(4)]
    # one fresh series per first-image run, so no run finds parsed headers or pixels of an earlier one
    first_uids = [make_ct(store, 20, ct_size, seed=100 + k) for k in range(repeat)]
    print(
        f"generated {args.slices}-slice CT, {args.frames}-frame XA, 4 × {args.series_2x2_slices}-slice CT and "
        f"{repeat} × 20-slice CT ({ct_size}²) in {time.perf_counter() - t:.1f} s"
    )

    from PySide6.QtWidgets import QApplication

    from viewer.ui.viewer import ViewerArea

    app = QApplication.instance() or QApplication([])
    area = ViewerArea(_Ctx(store))
    area.resize(1024, 900)
    area.show()
    app.processEvents()

    # ---------------------------------------------------------------- first image (ours, then the peer)
    first_ms: list[float] = []
    peer_first: list[float] = []
    viewport = None
    for uid in first_uids:
        area.cache.clear()
        t0 = time.perf_counter()
        viewport = area.open_series(uid)
        assert viewport is not None
        _paint(app, viewport)
        first_ms.append((time.perf_counter() - t0) * 1000)
        _wait_order(app, viewport)
    assert viewport is not None
    view_size = (viewport.view.width(), viewport.view.height())
    first_peer = PlainPeer(1, view_size)  # an open view, as ours: the view's creation is not timed
    for uid in first_uids:
        path = store.instances_for_series(uid)[0].path
        peer_first.append(peer_first_image(app, first_peer, str(path)))
    first_peer.close()

    t0 = time.perf_counter()
    viewport = area.open_series(ct_uid)
    assert viewport is not None
    _wait_order(app, viewport)
    order_s = time.perf_counter() - t0
    area.cache.clear()  # pixels go; parsed headers stay in the source pool

    # ---------------------------------------------------------------- scrolling
    uncached_fps = scroll(app, viewport, with_window=True)
    deadline = time.perf_counter() + 60
    while len(area.cache) < len(viewport.stack) and time.perf_counter() < deadline:
        area.cache.prefetch([viewport.stack.key(i) for i in range(len(viewport.stack))])
        time.sleep(0.1)
    frames = _frames(area, viewport)
    header = viewport.stack.header(0)
    cached_fps, peer_fps, cached_no_window = [], [], []
    for _ in range(repeat):
        cached_fps.append(scroll(app, viewport, with_window=True))
        peer_fps.append(peer_scroll(app, frames, header, view_size))
    for _ in range(repeat):
        cached_no_window.append(scroll(app, viewport, with_window=False))
    ct_bytes_16 = args.slices * ct_size * ct_size * 2
    cache_bytes = area.cache.bytes_used
    cached_frames = len(area.cache)

    ct_paths = [viewport.stack[i].path for i in range(0, len(viewport.stack), max(1, len(viewport.stack) // 20))]

    # ---------------------------------------------------------------- cine (same viewport, now the XA)
    file_rate = first_loop_fps = cached_cine_fps = None
    if xa_uid is not None:
        area.cache.clear()
        xa_view = area.open_series(xa_uid)
        assert xa_view is not None
        file_rate = xa_view.stack.cine_rate()
        area.cache.clear()
        first_loop_fps = cine(app, xa_view, len(xa_view.stack) - 1)
        cached_cine_fps = cine(app, xa_view, 3 * len(xa_view.stack))
        xa_view.stop_cine()

    # ---------------------------------------------------------------- 2×2: four series scrolling together
    area.cache.clear()
    area.set_layout("2x2")
    grid = area.visible_viewports
    for uid, v in zip(grid_uids, grid, strict=True):
        area.open_series(uid, v)
    for v in grid:
        _wait_order(app, v)
    _fill_cache(area, grid)
    grid_frames = [_frames(area, v) for v in grid]
    grid_size = (area.grid_widget.width(), area.grid_widget.height())
    grid_fps, grid_peer, grid_fixed = [], [], []
    for _ in range(repeat):
        grid_fps.append(scroll_2x2(app, area, grid, with_window=True))
        grid_peer.append(peer_scroll_2x2(app, grid_frames, grid[0].stack.header(0), grid_size))
    for _ in range(repeat):
        grid_fixed.append(scroll_2x2(app, area, grid, with_window=False))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dcmtk_ms = dcmtk_per_frame_ms(ct_paths)
    area.close_cache()

    def ratio(ours: float, peer: float) -> str:
        return f"{ours / peer:.2f}x the peer" if peer else ""

    f, pf = _median(first_ms), _median(peer_first)
    c, pc = _median(cached_fps), _median(peer_fps)
    g, pg_ = _median(grid_fps), _median(grid_peer)
    print(f"medians of {repeat} runs; viewport {view_size[0]}×{view_size[1]}, 2×2 grid {grid_size[0]}×{grid_size[1]}")
    print(f"first image in a Viewport:          {f:7.1f} ms   peer {pf:7.1f} ms  ({pf / f:.2f}x)  (target <= 25 ms)")
    print(f"position order ready (worker):      {order_s * 1000:7.1f} ms after open_series")
    print(f"scroll uncached (decode) + W/L:     {uncached_fps:7.1f} fps")
    print(f"scroll cached + W/L change/step:    {c:7.1f} fps  peer {pc:7.1f} fps  ({ratio(c, pc)})  (target >= 120)")
    print(f"scroll cached, fixed window:        {_median(cached_no_window):7.1f} fps")
    if file_rate is not None:
        print(f"cine XA {xa_size}² file rate:            {file_rate:7.1f} fps")
        print(f"cine XA {xa_size}² first loop (decode):  {first_loop_fps:7.1f} fps  (target >= 30 fps)")
        print(f"cine XA {xa_size}² cached loop:          {cached_cine_fps:7.1f} fps")
    print(f"2×2, 4 series cached + W/L, each:   {g:7.1f} fps  peer {pg_:7.1f} fps  ({ratio(g, pg_)})  (target >= 60)")
    print(f"2×2, 4 series cached, fixed window: {_median(grid_fixed):7.1f} fps per viewport")
    print(f"raw: first {[round(v, 1) for v in first_ms]} peer {[round(v, 1) for v in peer_first]}")
    print(f"raw: scroll {[round(v) for v in cached_fps]} peer {[round(v) for v in peer_fps]}")
    print(f"raw: 2×2 {[round(v) for v in grid_fps]} peer {[round(v) for v in grid_peer]}")
    print(
        f"CT frame cache: {cached_frames} frames, {cache_bytes / 2**20:.1f} MiB = "
        f"{cache_bytes / ct_bytes_16:.2f}x the series' 16-bit pixel size ({ct_bytes_16 / 2**20:.1f} MiB)"
    )
    print(f"peak RSS (whole process):           {peak_mb:7.1f} MiB")
    if dcmtk_ms is not None:
        ours_ms = 1000 / uncached_fps
        print(
            f"peer: DCMTK dcmj2pnm per slice (process start, decode, window, write PGM): {dcmtk_ms:.1f} ms; "
            f"ours uncached {ours_ms:.1f} ms/slice = {dcmtk_ms / ours_ms:.1f}x faster"
        )
    if args.quick:
        print("(--quick: tiny series, a smoke run; these figures are not the benchmark)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
