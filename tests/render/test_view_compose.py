"""`render/view.py`: one composition of a view state, equal to the pipeline without a state and to the
GSPS renderer (and DCMTK through it) with one, with the user's settings applied on top."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from viewer.render import gsps
from viewer.render.displaylist import GraphicItem, SpatialTransform
from viewer.render.lut import Window
from viewer.render.pipeline import render_frame
from viewer.render.view import (
    ComposeCache,
    Interpolation,
    PresentationKind,
    ViewState,
    combined_spatial,
    compose,
    render_view,
)


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    return Path(shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm"))


def _grey_state(image: Path, tmp_path: Path, **attrs) -> Path:
    from viewer.render.gsps_writer import GspsContent, build_gsps

    header = pydicom.dcmread(image, stop_before_pixels=True)
    ps = build_gsps([header], GspsContent(items=[], window_center=40, window_width=400))
    for key, value in attrs.items():
        setattr(ps, key, value)
    path = tmp_path / f"ps-{len(list(tmp_path.iterdir()))}.dcm"
    ps.save_as(path, enforce_file_format=True)
    return path


def test_no_state_equals_the_pipeline(ct):
    for voi, invert in ((None, False), (Window(-600, 1500), True)):
        shown = compose(ViewState(str(ct), voi=voi, invert=invert)).bitmap
        assert np.array_equal(shown, render_frame(ct, window=voi, invert=invert, burn_overlays=True).pixels)


def test_state_equals_the_gsps_renderer_and_user_voi_wins(ct, tmp_path):
    ps_path = _grey_state(ct, tmp_path, ImageRotation=90, ImageHorizontalFlip="Y")
    ps = pydicom.dcmread(ps_path)
    reference = gsps.apply_presentation_state(ps, ct)
    composed = compose(ViewState(str(ct), presentation=str(ps_path)))
    assert np.array_equal(composed.bitmap, reference.bitmap)
    assert composed.spatial == reference.spatial
    user = compose(ViewState(str(ct), presentation=str(ps_path), voi=Window(1000, 200)))
    assert not np.array_equal(user.bitmap, reference.bitmap)
    assert user.lut is not None and user.lut.voi == Window(1000, 200)


def test_state_not_referencing_the_image_is_ignored(ct, tmp_path):
    other = tmp_path / "other.dcm"
    ds = pydicom.dcmread(ct)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(other)
    ps_path = _grey_state(other, tmp_path, ImageRotation=180)
    composed = compose(ViewState(str(ct), presentation=str(ps_path)))
    assert composed.spatial.rotation == 0
    assert np.array_equal(composed.bitmap, render_frame(ct, burn_overlays=True).pixels)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("flips", [(False, False), (True, False), (False, True), (True, True)])
def test_user_transform_on_top_of_the_states(rotation, flips):
    """The combined transform maps points like 'state, then user flips, then user rotation'."""
    w, h = 7, 5
    state = SpatialTransform(w, h, 90, True)
    total = combined_spatial(w, h, 90, True, rotation, *flips)
    point = np.array([[1.25, 3.5]])
    p = state.image_to_transformed(point)[0]
    sw, sh = state.size
    cx, cy = sw / 2, sh / 2
    x, y = p[0] - cx, p[1] - cy
    if flips[0]:
        x = -x
    if flips[1]:
        y = -y
    for _ in range(rotation // 90):
        x, y = -y, x
    tw, th = total.size
    expected = (x + tw / 2, y + th / 2)
    assert np.allclose(total.image_to_transformed(point)[0], expected)


def test_screen_operations_compose():
    s = ViewState("x.dcm").flipped(horizontal=True).rotated(90)
    assert (s.rotation, s.flip_h, s.flip_v) == (90, True, False)
    # rotating what is on screen after a flip differs from flipping after a rotation
    assert ViewState("x.dcm").rotated(90).flipped(horizontal=True) != s
    assert ViewState("x.dcm").flipped(vertical=True).flip_v
    assert ViewState("x.dcm", rotation=270).rotated(90).rotation == 0
    assert s.reset().rotation == 0 and s.reset().interpolation is Interpolation.SMOOTH


def test_zoom_and_pan_place_the_view(ct):
    composed = compose(ViewState(str(ct), zoom=2.0, pan=(32.0, 32.0)))
    view = composed.view(100, 100)
    assert view.scale == (2.0, 2.0)
    assert np.allclose(view.image_to_display([(32.0, 32.0)])[0], (50.0, 50.0))


def test_user_items_are_drawn(ct):
    item = GraphicItem("POLYLINE", ((10.0, 10.0), (100.0, 10.0)), color=(255, 0, 0))
    raster = render_view(ViewState(str(ct), items=(item,), zoom=1.0), 128, 128)
    assert (raster[10, 20:90] == (255, 0, 0)).all()


def test_cache_reuses_the_lut_across_slices(ct):
    cache = ComposeCache()
    first = compose(ViewState(str(ct)), cache=cache)
    second = compose(ViewState(str(ct)), cache=cache)
    assert first.lut is second.lut


def test_kinds_are_typed():
    ds = pydicom.Dataset()
    ds.SOPClassUID = gsps.PSEUDO_COLOR_PS
    assert PresentationKind.of(ds) is PresentationKind.PSEUDO_COLOR


def test_cli_render_is_the_composition(ct, tmp_path):
    """`lightbox render --presentation … --rotate … --flip` writes exactly compose() of that view."""
    import subprocess
    import sys

    from PIL import Image

    ps_path = _grey_state(ct, tmp_path, ImageRotation=90, PresentationLUTShape="INVERSE")
    out = tmp_path / "out.png"
    command = [sys.executable, "-m", "viewer", "--home", str(tmp_path / "home"), "render", str(ct), str(out)]
    run = subprocess.run(
        [*command, "--presentation", str(ps_path), "--rotate", "180", "--flip"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    written = np.asarray(Image.open(out))
    expected = compose(ViewState(str(ct), presentation=str(ps_path), rotation=180, flip_h=True, show_overlays=False))
    assert np.array_equal(written, expected.bitmap)
    assert expected.spatial.rotation in (90, 270)
