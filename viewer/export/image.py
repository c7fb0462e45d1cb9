"""Writing composed views to image and video files (no Qt).

A "view" here is what `viewer.render.displaylist.rasterize` makes of a viewport's display list: an
H×W×3 uint8 RGB array (or H×W grey). PNG goes through our own zlib writer (lossless, the exact composed
pixels); JPEG through Pillow; MP4 through PyAV (FFmpeg), H.264 when the wheel's FFmpeg has libx264 and
MPEG-4 Part 2 otherwise, so a video plays in any browser or office application without a codec pack.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from viewer.render.png import encode_png

IMAGE_FORMATS = ("png", "jpeg")
JPEG_QUALITY = 92  # high enough that window/level edges and text stay clean


class ExportError(ValueError):
    """An export that cannot be done (bad format, empty series, unwritable file); the message is for the user."""


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """H×W grey, H×W×3 RGB or H×W×4 RGBA (any integer type) → contiguous H×W×3 uint8."""
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ExportError(f"cannot export an image of shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def format_for_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return "png"
    if suffix in (".jpg", ".jpeg"):
        return "jpeg"
    raise ExportError(f"unknown image type '{suffix or Path(path).name}': use .png or .jpg")


def encode_image(pixels: np.ndarray, fmt: str, *, quality: int = JPEG_QUALITY) -> bytes:
    """The view as PNG (lossless) or JPEG bytes."""
    rgb = as_rgb(pixels)
    if fmt == "png":
        return encode_png(rgb)
    if fmt == "jpeg":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buffer, "JPEG", quality=quality, subsampling=0)
        return buffer.getvalue()
    raise ExportError(f"unknown image format {fmt!r} (use {', '.join(IMAGE_FORMATS)})")


def write_image(path: str | Path, pixels: np.ndarray, *, quality: int = JPEG_QUALITY) -> Path:
    """Write the view to `path` (type from the suffix), via a temporary file so a failure leaves no half file."""
    target = Path(path)
    data = encode_image(pixels, format_for_path(target), quality=quality)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"could not write {target}: {exc.strerror or exc}") from exc
    return target


def video_codec() -> str:
    """H.264 when this FFmpeg build can encode it (the PyAV wheels ship libx264), else MPEG-4 Part 2."""
    from av.codec import Codec

    for name in ("libx264", "mpeg4"):
        try:
            Codec(name, "w")
        except Exception:  # not in this build
            continue
        return name
    raise ExportError("this installation has no MP4 video encoder")


def _even(value: int) -> int:
    # yuv420p (what players expect) subsamples chroma 2×2, so encoders need even frame sizes.
    return max(2, value + (value % 2))


def write_video(path: str | Path, frames: Iterable[np.ndarray], *, fps: float = 10.0) -> int:
    """Encode composed views as an MP4 at `fps`; returns the number of frames written.

    Every frame is padded (black, right/bottom) to the first frame's size rounded up to even; later frames of
    another size are centred on that canvas, so a series of mixed matrix sizes still makes one video.
    """
    import av

    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp.mp4")
    count = 0
    rate = Fraction(fps).limit_denominator(1000)
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = None
            width = height = 0
            for pixels in frames:
                rgb = as_rgb(pixels)
                if stream is None:
                    height, width = _even(rgb.shape[0]), _even(rgb.shape[1])
                    stream = container.add_stream(video_codec(), rate=rate)
                    stream.width, stream.height = width, height
                    stream.pix_fmt = "yuv420p"
                    if stream.codec_context.name == "libx264":
                        # Near-lossless, so text and thin annotation lines survive; medical frames are small.
                        stream.options = {"crf": "12", "preset": "medium"}
                    else:
                        stream.bit_rate = 8_000_000
                canvas = np.zeros((height, width, 3), np.uint8)
                h, w = min(rgb.shape[0], height), min(rgb.shape[1], width)
                top, left = (height - h) // 2, (width - w) // 2
                src_top, src_left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
                canvas[top : top + h, left : left + w] = rgb[src_top : src_top + h, src_left : src_left + w]
                frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ExportError("there are no images to put in the video")
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(target)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, av.FFmpegError) as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"could not write the video {target}: {exc}") from exc
    return count
