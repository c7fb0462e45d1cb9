"""Series stacks, the frame cache, measurements and the `lightbox render` command."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from viewer.render.cache import FrameCache, neighbour_order
from viewer.render.measure import Angle, Calibration, Distance, EllipseRoi, RectangleRoi, value_units
from viewer.render.series import (
    SeriesStack,
    SliceGeometry,
    annotations,
    orientation_labels,
    reference_line,
)


def make_ct_series(folder: Path, count: int = 6, *, shuffled: bool = True) -> list[Path]:
    """`count` axial CT slices 2 mm apart, written in shuffled order with instance numbers that disagree."""
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base_pixels = base.pixel_array.copy()
    series_uid = generate_uid()
    paths = []
    order = list(range(count))
    if shuffled:
        order = order[::2] + order[1::2]
    for number, k in enumerate(order, start=1):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-50.0, -50.0, 10.0 + 2.0 * k]
        ds.SliceLocation = 10.0 + 2.0 * k
        ds.PixelData = (base_pixels + k).astype(np.int16).tobytes()
        path = folder / f"slice{number:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_stack_sorts_by_position_and_finds_nearest(tmp_path: Path) -> None:
    stack = SeriesStack.from_paths(make_ct_series(tmp_path))
    z = [float(stack.geometry(i).position[2]) for i in range(len(stack))]  # type: ignore[union-attr]
    # the instance numbers disagree with the positions: axial stacks then read head first (descending z)
    assert z == sorted(z, reverse=True) and len(z) == 6
    assert stack.nearest_index(np.array([0.0, 0.0, 14.9])) == 3
    assert stack.load_frame(0).dtype == np.int16


def test_stack_from_store_and_cine_rate(tmp_path: Path, store) -> None:
    for path in make_ct_series(tmp_path, 4):
        store.add_file(path)
    series_uid = store.series_for_study(store.studies()[0].study_uid)[0].series_uid
    stack = SeriesStack.from_store(store, series_uid)
    assert len(stack) == 4 and stack.modality == "CT"
    # the index keeps every plane: the stack is in reading order (head first) before any header is read
    assert stack.ordered
    z = [float(stack.slices[i].position[2]) for i in range(len(stack))]
    assert z == sorted(z, reverse=True)
    assert not stack.sort_by_position()  # already in order
    assert stack.cine_rate() is None
    ds = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    multi = SeriesStack.from_paths([get_testdata_file("examples_ybr_color.dcm")])
    assert len(multi) == int(ds.NumberOfFrames)
    assert multi.cine_rate() is not None and multi.cine_rate() > 0


def test_orientation_markers_and_reference_line() -> None:
    axial = SliceGeometry(
        np.array([-100.0, -100.0, 0.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (1.0, 1.0), 200, 200
    )
    assert orientation_labels(axial) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    assert orientation_labels(axial, flip_h=True)["right"] == "R"
    assert orientation_labels(axial, rotation=90) == {"right": "A", "left": "P", "bottom": "L", "top": "R"}
    coronal = SliceGeometry(
        np.array([-100.0, 20.0, 100.0]), np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), (1.0, 1.0), 200, 200
    )
    assert orientation_labels(coronal)["top"] == "H"
    line = reference_line(axial, coronal)  # the coronal plane y=20 crosses the axial image at row 120
    assert line is not None
    (c0, r0), (c1, r1) = line
    assert r0 == pytest.approx(120) and r1 == pytest.approx(120) and {c0, c1} == {0.0, 199.0}
    assert reference_line(axial, axial) is None


def test_annotations_show_patient_window_and_location() -> None:
    from viewer.render.lut import Window

    header = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    corners = annotations(header, frame_index=0, frame_count=10, voi=Window(40, 400), zoom=2.0)
    assert "CompressedSamples^CT1".replace("^", " ") in corners["top_left"][0]
    assert any("W: 400 L: 40" in t for t in corners["bottom_right"])
    assert "Zoom: 200%" in corners["bottom_right"]
    assert any(t.startswith("Loc:") for t in corners["bottom_left"])
    assert any(t.startswith("Thk:") for t in corners["bottom_left"])


def test_frame_cache_bounds_memory_keeps_visible_and_prefetches() -> None:
    frame_bytes = 64 * 64 * 2
    decoded: list[int] = []
    lock = threading.Lock()

    def loader(key: int) -> np.ndarray:
        with lock:
            decoded.append(key)
        return np.full((64, 64), key, dtype=np.int16)

    cache = FrameCache(loader, max_bytes=10 * frame_bytes)
    try:
        cache.set_visible([0])
        assert cache.get(0) is None
        assert int(cache.get_blocking(0)[0, 0]) == 0
        cache.prefetch(neighbour_order(0, 100))
        deadline = time.monotonic() + 5
        while len(cache) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(cache) == 10 and cache.bytes_used <= 10 * frame_bytes
        assert all(k in cache for k in range(10))  # nearest first, then it stops: the cache is full
        ready = threading.Event()
        got: dict[int, int] = {}
        cache.request(50, lambda key, frame: (got.setdefault(key, int(frame[0, 0])), ready.set()))
        assert ready.wait(5) and got == {50: 50}
        assert 0 in cache  # visible frames are never evicted
        assert cache.bytes_used <= 10 * frame_bytes
        assert cache.stats().evicted >= 1
    finally:
        cache.close()


def test_frame_cache_reports_errors() -> None:
    def loader(key: int) -> np.ndarray:
        raise ValueError("corrupt")

    cache = FrameCache(loader)
    failed = threading.Event()
    try:
        cache.request(1, None, lambda key, exc: failed.set())
        assert failed.wait(5)
        assert cache.stats().errors == 1
    finally:
        cache.close()


def test_measurements() -> None:
    header = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    cal = Calibration.from_header(header)
    assert cal.source == "Pixel Spacing"
    spacing = float(header.PixelSpacing[0])
    d = Distance((0, 0), (30, 40))
    assert d.pixels == 50 and d.millimetres(cal) == pytest.approx(50 * spacing)
    detector = Calibration(0.2, 0.2, "Imager Pixel Spacing")
    assert d.label(detector) == "10.0 mm (detector)" and "Imager Pixel Spacing" in detector.describe()
    assert "uncalibrated" in d.label(Calibration())
    assert Angle((10, 0), (0, 0), (0, 10)).degrees == pytest.approx(90)
    assert Angle((10, 0), (0, 0), (10, 10)).label() == "45.0°"
    values = np.zeros((100, 100))
    values[40:60, 40:60] = 100.0
    rect = RectangleRoi((40, 40), (59, 59)).stats(values, cal, value_units(header))
    assert rect.n == 400 and rect.mean == 100 and rect.sd == 0 and rect.units == "HU"
    assert rect.area_mm2 == pytest.approx(19 * 19 * spacing * spacing)
    ellipse = EllipseRoi((50, 50), (10, 10)).stats(values, Calibration())
    assert ellipse.area_mm2 is None and abs(ellipse.n - np.pi * 100) < 15
    assert 0 < ellipse.mean < 100 and ellipse.sd > 0


def test_render_command_writes_png_from_file_and_store(tmp_path: Path, lightbox_home: Path) -> None:
    from PIL import Image

    from viewer.core.context import AppContext

    paths = make_ct_series(tmp_path, 3)
    ctx = AppContext.open(lightbox_home)
    for path in paths:
        ctx.store.add_file(path)
    series_uid = ctx.store.series_for_study(ctx.store.studies()[0].study_uid)[0].series_uid
    ctx.store.close()
    env_python = sys.executable
    out_file = tmp_path / "file.png"
    run = subprocess.run(
        [
            env_python,
            "-m",
            "viewer",
            "--home",
            str(lightbox_home),
            "render",
            str(paths[0]),
            str(out_file),
            "--window",
            "40",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    from viewer.render.lut import Window
    from viewer.render.pipeline import render_frame

    expected = render_frame(paths[0], window=Window(40, 400)).pixels
    np.testing.assert_array_equal(np.array(Image.open(out_file)), expected)
    out_series = tmp_path / "series.png"
    run = subprocess.run(
        [
            env_python,
            "-m",
            "viewer",
            "--home",
            str(lightbox_home),
            "render",
            series_uid,
            str(out_series),
            "--preset",
            "Lung",
            "--frame",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "frame 1/3" in run.stdout and "Lung" in run.stdout
    assert np.array(Image.open(out_series)).shape == (128, 128)
    bad = subprocess.run(
        [env_python, "-m", "viewer", "--home", str(lightbox_home), "render", "1.2.3", str(out_series)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "neither a file" in bad.stderr


def test_measurement_editing_geometry_and_scale_bar() -> None:
    from viewer.render.measure import distance_to, handles, scale_bar, translated, with_handle

    line = Distance((0.0, 0.0), (10.0, 0.0))
    assert handles(line) == [(0.0, 0.0), (10.0, 0.0)]
    assert with_handle(line, 1, (10.0, 5.0)) == Distance((0.0, 0.0), (10.0, 5.0))
    assert translated(line, 2.0, 3.0) == Distance((2.0, 3.0), (12.0, 3.0))
    assert distance_to(line, (5.0, 4.0)) == pytest.approx(4.0)
    assert distance_to(line, (13.0, 4.0)) == pytest.approx(5.0)
    angle = Angle((0.0, 5.0), (0.0, 0.0), (5.0, 0.0))
    assert with_handle(angle, 1, (1.0, 1.0)).vertex == (1.0, 1.0)
    rect = RectangleRoi((10.0, 10.0), (20.0, 30.0))
    # dragging the bottom-right corner keeps the top-left one
    assert with_handle(rect, 2, (25.0, 35.0)).bounds() == (10.0, 10.0, 25.0, 35.0)
    assert distance_to(rect, (15.0, 15.0)) == 0.0 and distance_to(rect, (23.0, 34.0)) == pytest.approx(5.0)
    ellipse = EllipseRoi((0.0, 0.0), (4.0, 2.0))
    assert with_handle(ellipse, 0, (6.0, 1.0)).radii == (6.0, 2.0)
    assert with_handle(ellipse, 3, (0.0, -5.0)).radii == (4.0, 5.0)
    assert distance_to(ellipse, (1.0, 0.5)) == 0.0 and distance_to(ellipse, (8.0, 0.0)) == pytest.approx(4.0)
    # 0.5 mm per screen pixel, at most 200 px: 100 mm fits exactly
    bar = scale_bar(0.5, 200)
    assert bar is not None and bar.millimetres == 100 and bar.pixels == 200 and bar.label == "10 cm"
    bar = scale_bar(0.05, 150)  # 7.5 mm available: 5 mm
    assert bar is not None and bar.millimetres == 5 and bar.label == "5 mm" and bar.pixels == pytest.approx(100)
    bar = scale_bar(0.98 / 4.0, 175)  # 42.9 mm available: 2 cm
    assert bar is not None and bar.label == "2 cm"
    assert scale_bar(0.0, 100) is None
