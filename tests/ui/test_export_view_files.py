"""Image and video files of composed views: PNG is exact, JPEG and MP4 decode back close to the view."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from viewer.export.image import ExportError, encode_image, video_codec, write_image, write_video
from viewer.render.displaylist import rasterize
from viewer.render.gsps import default_display_list


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    """Three different composed views (CT with its window, MR, the CT shifted) at a 160×120 viewport."""
    ct = rasterize(default_display_list(get_testdata_file("CT_small.dcm")), 160, 120)
    mr = rasterize(default_display_list(get_testdata_file("MR_small.dcm")), 160, 120)
    return [ct, mr, np.roll(ct, 40, axis=1)]


def test_png_holds_exactly_the_composed_pixels(tmp_path: Path, views: list[np.ndarray]) -> None:
    from PIL import Image

    path = write_image(tmp_path / "view.png", views[0])
    decoded = np.asarray(Image.open(path).convert("RGB"))
    assert decoded.shape == views[0].shape and np.array_equal(decoded, views[0])
    assert not list(tmp_path.glob(".*tmp"))


def test_jpeg_is_close_to_the_composed_pixels(tmp_path: Path, views: list[np.ndarray]) -> None:
    from PIL import Image

    path = write_image(tmp_path / "view.jpg", views[1])
    decoded = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert decoded.shape == views[1].shape
    assert np.abs(decoded - views[1].astype(int)).mean() < 2.0
    assert Image.open(io.BytesIO(encode_image(views[1], "jpeg"))).format == "JPEG"


def test_unknown_image_type_is_refused_in_plain_words(tmp_path: Path, views: list[np.ndarray]) -> None:
    with pytest.raises(ExportError, match=r"use \.png or \.jpg"):
        write_image(tmp_path / "view.tiff", views[0])
    assert not (tmp_path / "view.tiff").exists()


def test_mp4_decodes_back_to_the_views(tmp_path: Path, views: list[np.ndarray]) -> None:
    import av

    frames = [views[i % 3] for i in range(12)]
    assert write_video(tmp_path / "cine.mp4", frames, fps=12.5) == 12
    with av.open(str(tmp_path / "cine.mp4")) as container:
        stream = container.streams.video[0]
        expected = {"libx264": "h264", "mpeg4": "mpeg4"}[video_codec()]
        assert stream.codec_context.name == expected
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(12.5, rel=0.01)
    assert len(decoded) == 12
    for got, want in zip(decoded, frames):
        assert got.shape == (120, 160, 3)
        # Lossy (and YUV 4:2:0), but near-lossless settings: the mean error is a few grey levels at most.
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 4.0
    # The frames stay in order: each decoded frame is nearer its own view than the others.
    for got, index in zip(decoded, range(12)):
        errors = [np.abs(got.astype(int) - v.astype(int)).mean() for v in views]
        assert int(np.argmin(errors)) == index % 3


def test_odd_sizes_are_padded_and_empty_video_refused(tmp_path: Path, views: list[np.ndarray]) -> None:
    import av

    odd = [view[:119, :159] for view in views]
    assert write_video(tmp_path / "odd.mp4", odd) == 3
    with av.open(str(tmp_path / "odd.mp4")) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert first.shape == (120, 160, 3)
    assert np.abs(first[:119, :159].astype(int) - odd[0].astype(int)).mean() < 4.0
    with pytest.raises(ExportError, match="no images"):
        write_video(tmp_path / "empty.mp4", [])
    assert not (tmp_path / "empty.mp4").exists() and not list(tmp_path.glob(".empty*"))
