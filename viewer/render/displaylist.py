"""A presentation-state display list: a rendered bitmap plus vector items, and the geometry between them.

No Qt. The viewer (Qt) and print (reportlab / film bitmaps) both consume a `DisplayList`:

* ``DisplayList.bitmap`` – uint8, H×W (grey) or H×W×3 (RGB): the frame after the LUT stages, shutters and
  overlays, **in the spatially transformed frame** (rotated, then flipped). The full image, not cropped.
* ``DisplayList.spatial`` (`SpatialTransform`) and ``DisplayList.area`` (`DisplayedArea`) – what the
  presentation state says about rotation/flip and the displayed area.
* ``DisplayList.items`` – `GraphicItem` / `TextItem` in their source units (PIXEL or DISPLAY), in layer order.
* ``DisplayList.view(width, height, display_pixel_mm=0.25)`` → `ViewTransform` for a viewport of that many
  device pixels: ``image_to_display(points)``, ``display_to_image(points)``, ``display_units_to_screen``,
  ``bitmap_rect`` (where the bitmap's full extent lands) and ``area_rect`` (the displayed area, the clip).
* ``DisplayList.layout(width, height)`` → `Layout`: `ScreenGraphic` / `ScreenText` in device pixels, ready
  to draw with any 2-D API (QPainter, reportlab, PIL).
* ``rasterize(display_list, width, height)`` → H×W×3 uint8 with the bitmap and vectors burned in (PIL), for
  film printing and tests.

Coordinate conventions (PS3.3 C.10.5 / C.10.4):
* image coordinates are continuous: (0, 0) is the top-left corner of the first pixel, pixel (column c, row r),
  1-based, covers [c-1, c] × [r-1, r] and its centre is (c-0.5, r-0.5). This is GSPS PIXEL units.
* the Displayed Area TLHC/BRHC are 1-based pixel indices before the spatial transformation; TLHC names the
  pixel whose outer corner lands top-left *after* the transformation, so the area covers whole pixels:
  [min(x)-1, max(x)] × [min(y)-1, max(y)] in image coordinates.
* DISPLAY units are fractions of the displayed area after the transformation: (0, 0) its top-left, (1, 1)
  its bottom-right.
* display (screen) coordinates are device pixels with the same half-pixel convention: device pixel (i, j),
  0-based, covers [i, i+1] × [j, j+1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]
Point = tuple[float, float]

SIZE_MODES = ("SCALE TO FIT", "TRUE SIZE", "MAGNIFY")


def _as_points(points) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    return arr.reshape(-1, 2)


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    pts = _as_points(points)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


@dataclass(frozen=True)
class SpatialTransform:
    """Rotation (clockwise, 0/90/180/270) then horizontal flip, of a `columns`×`rows` image (PS3.3 C.10.6)."""

    columns: int
    rows: int
    rotation: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270, not {self.rotation}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the transformed image."""
        if self.rotation in (90, 270):
            return self.rows, self.columns
        return self.columns, self.rows

    @property
    def matrix(self) -> np.ndarray:
        """3×3 affine: image coordinates → transformed-image coordinates (continuous, same units)."""
        w, h = self.columns, self.rows
        rot = {
            0: ((1, 0, 0), (0, 1, 0)),
            90: ((0, -1, h), (1, 0, 0)),
            180: ((-1, 0, w), (0, -1, h)),
            270: ((0, 1, 0), (-1, 0, w)),
        }[self.rotation]
        m = np.array([rot[0], rot[1], (0, 0, 1)], dtype=np.float64)
        if self.flip:
            width = self.size[0]
            m = np.array([(-1, 0, width), (0, 1, 0), (0, 0, 1)], dtype=np.float64) @ m
        return m

    def image_to_transformed(self, points) -> np.ndarray:
        return _apply(self.matrix, points)

    def transformed_to_image(self, points) -> np.ndarray:
        return _apply(np.linalg.inv(self.matrix), points)

    def apply_to_array(self, array: np.ndarray) -> np.ndarray:
        """Rotate/flip a rows×columns(×channels) array the same way."""
        out = np.rot90(array, k=-(self.rotation // 90), axes=(0, 1))
        if self.flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


@dataclass(frozen=True)
class DisplayedArea:
    """Displayed Area Selection for one image/frame (PS3.3 C.10.4)."""

    tlhc: tuple[int, int]  # (column, row), 1-based, before the spatial transformation
    brhc: tuple[int, int]
    size_mode: str = "SCALE TO FIT"
    magnification: float = 1.0
    pixel_spacing: tuple[float, float] | None = None  # (row spacing, column spacing) in mm
    aspect_ratio: tuple[float, float] = (1.0, 1.0)  # (vertical, horizontal)

    @classmethod
    def whole_image(cls, columns: int, rows: int) -> DisplayedArea:
        return cls((1, 1), (columns, rows))

    def image_rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in image coordinates: the outer edges of the corner pixels."""
        xs = (self.tlhc[0], self.brhc[0])
        ys = (self.tlhc[1], self.brhc[1])
        return float(min(xs) - 1), float(min(ys) - 1), float(max(xs)), float(max(ys))

    @property
    def vertical_over_horizontal(self) -> float:
        if self.pixel_spacing and self.pixel_spacing[0] > 0 and self.pixel_spacing[1] > 0:
            return self.pixel_spacing[0] / self.pixel_spacing[1]
        v, h = self.aspect_ratio
        return v / h if v > 0 and h > 0 else 1.0


@dataclass(frozen=True)
class ViewTransform:
    """Image ↔ display mapping for one viewport size."""

    matrix: np.ndarray  # 3×3, image coordinates → display (device pixel) coordinates
    transformed_matrix: np.ndarray  # 3×3, transformed-image coordinates → display
    area_transformed: tuple[float, float, float, float]  # displayed area in transformed coordinates
    area_rect: tuple[float, float, float, float]  # displayed area on the display (x0, y0, x1, y1)
    bitmap_rect: tuple[float, float, float, float]  # where the bitmap's full extent lands
    viewport: tuple[int, int]

    def image_to_display(self, points) -> np.ndarray:
        return _apply(self.matrix, points)

    def display_to_image(self, points) -> np.ndarray:
        return _apply(np.linalg.inv(self.matrix), points)

    def display_units_to_transformed(self, points) -> np.ndarray:
        x0, y0, x1, y1 = self.area_transformed
        pts = _as_points(points)
        return np.column_stack((x0 + pts[:, 0] * (x1 - x0), y0 + pts[:, 1] * (y1 - y0)))

    def display_units_to_screen(self, points) -> np.ndarray:
        return _apply(self.transformed_matrix, self.display_units_to_transformed(points))

    def screen_to_display_units(self, points) -> np.ndarray:
        t = _apply(np.linalg.inv(self.transformed_matrix), points)
        x0, y0, x1, y1 = self.area_transformed
        return np.column_stack(((t[:, 0] - x0) / (x1 - x0), (t[:, 1] - y0) / (y1 - y0)))

    def to_screen(self, points, units: str) -> np.ndarray:
        if units.upper() == "DISPLAY":
            return self.display_units_to_screen(points)
        return self.image_to_display(points)

    def from_screen(self, points, units: str) -> np.ndarray:
        if units.upper() == "DISPLAY":
            return self.screen_to_display_units(points)
        return self.display_to_image(points)

    @property
    def scale(self) -> tuple[float, float]:
        """Device pixels per transformed-image pixel, horizontally and vertically."""
        return float(abs(self.transformed_matrix[0, 0])), float(abs(self.transformed_matrix[1, 1]))


def view_transform(
    spatial: SpatialTransform,
    area: DisplayedArea,
    width: int,
    height: int,
    *,
    display_pixel_mm: float = 0.25,
    zoom: float | None = None,
    center: Point | None = None,
) -> ViewTransform:
    """Place the displayed area in a `width`×`height` viewport, centred, scaled as its size mode says.

    `zoom` (device pixels per image pixel, horizontally) replaces the size mode and `center` (image
    coordinates, before the spatial transformation) the area's centre: the user's zoom and pan.
    """
    x0, y0, x1, y1 = area.image_rect()
    corners = spatial.image_to_transformed([(x0, y0), (x1, y1)])
    ax0, ay0 = corners.min(axis=0)
    ax1, ay1 = corners.max(axis=0)
    aw, ah = max(ax1 - ax0, 1e-9), max(ay1 - ay0, 1e-9)
    ratio = area.vertical_over_horizontal  # image pixel height / width
    # a transformed pixel's (width, height) in "horizontal image pixel" units
    kx, ky = (ratio, 1.0) if spatial.rotation in (90, 270) else (1.0, ratio)
    mode = area.size_mode.upper()
    if zoom is not None and zoom > 0:
        s = float(zoom)
    elif mode == "MAGNIFY":
        s = float(area.magnification or 1.0)
    elif mode == "TRUE SIZE" and area.pixel_spacing:
        s = area.pixel_spacing[1] / display_pixel_mm
    else:
        s = min(width / (aw * kx), height / (ah * ky))
    sx, sy = s * kx, s * ky
    cx, cy = (ax0 + ax1) / 2.0, (ay0 + ay1) / 2.0
    if center is not None:
        cx, cy = (float(v) for v in spatial.image_to_transformed([center])[0])
    tm = np.array([(sx, 0, width / 2.0 - cx * sx), (0, sy, height / 2.0 - cy * sy), (0, 0, 1)], dtype=np.float64)
    matrix = tm @ spatial.matrix
    bw, bh = spatial.size
    b = _apply(tm, [(0, 0), (bw, bh)])
    a = _apply(tm, [(ax0, ay0), (ax1, ay1)])
    return ViewTransform(
        matrix=matrix,
        transformed_matrix=tm,
        area_transformed=(float(ax0), float(ay0), float(ax1), float(ay1)),
        area_rect=(float(a[0, 0]), float(a[0, 1]), float(a[1, 0]), float(a[1, 1])),
        bitmap_rect=(float(b[0, 0]), float(b[0, 1]), float(b[1, 0]), float(b[1, 1])),
        viewport=(width, height),
    )


# ----------------------------------------------------------------------------- items
GRAPHIC_TYPES = ("POINT", "POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE")


@dataclass(frozen=True)
class GraphicItem:
    """A GSPS graphic object. `points` as in Graphic Data: (column, row) pairs in `units`.

    CIRCLE: centre, then a point on the circumference. ELLIPSE: major axis end points, then minor axis end points.
    """

    kind: str
    points: tuple[Point, ...]
    units: str = "PIXEL"
    filled: bool = False
    layer: str = ""
    color: RGB = (255, 255, 255)
    grey: int | None = None  # recommended grayscale P-value 0..65535 when the layer gives one


@dataclass(frozen=True)
class TextItem:
    """A GSPS text object: a bounding box and/or an anchor point, each in its own units."""

    text: str
    box: tuple[Point, Point] | None = None  # (TLHC, BRHC)
    box_units: str = "PIXEL"
    anchor: Point | None = None
    anchor_units: str = "PIXEL"
    anchor_visible: bool = False
    justification: str = "LEFT"
    layer: str = ""
    color: RGB = (255, 255, 255)
    grey: int | None = None


Item = GraphicItem | TextItem


@dataclass(frozen=True)
class ScreenGraphic:
    kind: str
    points: tuple[Point, ...]  # device pixels; CIRCLE/ELLIPSE/INTERPOLATED are sampled into a polygon
    closed: bool
    filled: bool
    color: RGB
    layer: str = ""
    ellipse: tuple[Point, Point, Point] | None = None  # (centre, semi-axis u, semi-axis v) for exact drawing


@dataclass(frozen=True)
class ScreenText:
    text: str
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 (axis-aligned, text stays upright)
    anchor: Point | None
    anchor_visible: bool
    justification: str
    color: RGB
    layer: str = ""

    def text_origin(self, text_width: float, text_height: float) -> Point:
        """Top-left point for text of that measured size (box with justification, else next to the anchor)."""
        if self.box is not None:
            x0, y0, x1, _ = self.box
            just = self.justification.upper()
            if just == "RIGHT":
                return x1 - text_width, y0
            if just == "CENTER":
                return (x0 + x1 - text_width) / 2.0, y0
            return x0, y0
        assert self.anchor is not None
        return self.anchor[0] + 4.0, self.anchor[1] - text_height - 4.0


@dataclass(frozen=True)
class Layout:
    view: ViewTransform
    graphics: tuple[ScreenGraphic, ...]
    texts: tuple[ScreenText, ...]


@dataclass
class DisplayList:
    bitmap: np.ndarray
    spatial: SpatialTransform
    area: DisplayedArea
    items: list[Item] = field(default_factory=list)
    layer_order: tuple[str, ...] = ()
    description: str = ""
    icc_applied: bool = False
    # the bitmap before the spatial transformation (image orientation), for painters that transform it
    # themselves (the screen keeps image coordinates for its tools); None when only `bitmap` was made
    image_bitmap: np.ndarray | None = None
    zoom: float | None = None  # the user's zoom (device pixels per image pixel); None = the area's size mode
    center: Point | None = None  # the user's pan: image coordinates at the viewport's centre
    lut: object | None = None  # the `lut.DisplayLut` that made a grayscale bitmap (readouts, print at 12 bits)

    def view(self, width: int, height: int, *, display_pixel_mm: float = 0.25) -> ViewTransform:
        return view_transform(
            self.spatial,
            self.area,
            width,
            height,
            display_pixel_mm=display_pixel_mm,
            zoom=self.zoom,
            center=self.center,
        )

    def layout(self, width: int, height: int, *, display_pixel_mm: float = 0.25) -> Layout:
        view = self.view(width, height, display_pixel_mm=display_pixel_mm)
        graphics: list[ScreenGraphic] = []
        texts: list[ScreenText] = []
        for item in self.items:
            if isinstance(item, GraphicItem):
                g = screen_graphic(item, view)
                if g is not None:
                    graphics.append(g)
            else:
                texts.append(screen_text(item, view))
        return Layout(view, tuple(graphics), tuple(texts))


def _pts(arr: np.ndarray) -> tuple[Point, ...]:
    return tuple((float(x), float(y)) for x, y in arr)


def _ellipse_polygon(c: np.ndarray, u: np.ndarray, v: np.ndarray, n: int = 72) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return c + np.outer(np.cos(t), u) + np.outer(np.sin(t), v)


def catmull_rom(points: np.ndarray, samples: int = 12) -> np.ndarray:
    """A smooth curve through every vertex (INTERPOLATED graphic type)."""
    if len(points) < 3:
        return points
    closed = bool(np.allclose(points[0], points[-1]))
    p = points[:-1] if closed else points
    padded = np.vstack((p[-1], p, p[0], p[1])) if closed else np.vstack((p[0], p, p[-1]))
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        for t in np.linspace(0.0, 1.0, samples, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(
                0.5
                * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
            )
    out.append(padded[-2])
    return np.array(out)


def screen_graphic(item: GraphicItem, view: ViewTransform) -> ScreenGraphic | None:
    src = _as_points(item.points)
    if len(src) == 0:
        return None
    kind = item.kind.upper()
    units = item.units.upper()
    if kind in ("CIRCLE", "ELLIPSE"):
        if kind == "CIRCLE":
            if len(src) < 2:
                return None
            centre_s, edge_s = view.to_screen(src[:2], units)
            if units == "DISPLAY":
                # a DISPLAY circle is a circle on the display whatever the area's aspect
                r = float(np.hypot(*(edge_s - centre_s)))
                u, v = np.array([r, 0.0]), np.array([0.0, r])
            else:
                r = float(np.hypot(*(src[1] - src[0])))
                lin = view.matrix[:2, :2]
                u, v = lin @ np.array([r, 0.0]), lin @ np.array([0.0, r])
            c = centre_s
        else:
            if len(src) < 4:
                return None
            s = view.to_screen(src[:4], units)
            c = (s[0] + s[1]) / 2.0
            u = (s[1] - s[0]) / 2.0
            v = (s[3] - s[2]) / 2.0
        poly = _ellipse_polygon(c, u, v)
        return ScreenGraphic(
            kind,
            _pts(poly),
            True,
            item.filled,
            item.color,
            item.layer,
            ((float(c[0]), float(c[1])), (float(u[0]), float(u[1])), (float(v[0]), float(v[1]))),
        )
    screen = view.to_screen(src, units)
    closed = len(src) > 2 and bool(np.allclose(src[0], src[-1]))
    if kind == "INTERPOLATED":
        screen = catmull_rom(screen)
    return ScreenGraphic(kind, _pts(screen), closed, item.filled and closed, item.color, item.layer)


def screen_text(item: TextItem, view: ViewTransform) -> ScreenText:
    box = None
    if item.box is not None:
        corners = view.to_screen(item.box, item.box_units)
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        box = (float(x0), float(y0), float(x1), float(y1))
    anchor = None
    if item.anchor is not None:
        a = view.to_screen([item.anchor], item.anchor_units)[0]
        anchor = (float(a[0]), float(a[1]))
    return ScreenText(item.text, box, anchor, item.anchor_visible, item.justification, item.color, item.layer)


# ----------------------------------------------------------------------------- rasterizing (print, tests)
def resample_bitmap(
    display_list: DisplayList, width: int, height: int, view: ViewTransform | None = None
) -> np.ndarray:
    """The bitmap placed in the viewport by nearest neighbour (pixel centres), clipped to the displayed area
    (unless the user's zoom/pan replaced it)."""
    view = view or display_list.view(width, height)
    bitmap = display_list.bitmap
    channels = 3 if bitmap.ndim == 3 else 1
    out = np.zeros((height, width, channels), dtype=np.uint8)
    inv = np.linalg.inv(view.transformed_matrix)
    xs = (np.arange(width) + 0.5) * inv[0, 0] + inv[0, 2]
    ys = (np.arange(height) + 0.5) * inv[1, 1] + inv[1, 2]
    ax0, ay0, ax1, ay1 = view.area_transformed
    bh, bw = bitmap.shape[:2]
    if display_list.zoom is not None:
        # the user's zoom/pan replaces the displayed area: the whole image may be looked at, as on screen
        ax0, ay0, ax1, ay1 = 0.0, 0.0, float(bw), float(bh)
    col_ok = (xs >= max(ax0, 0)) & (xs < min(ax1, bw))
    row_ok = (ys >= max(ay0, 0)) & (ys < min(ay1, bh))
    cols = np.clip(np.floor(xs).astype(np.int64), 0, bw - 1)
    rows = np.clip(np.floor(ys).astype(np.int64), 0, bh - 1)
    src = bitmap.reshape(bh, bw, channels)
    sampled = src[rows[:, None], cols[None, :]]
    mask = row_ok[:, None] & col_ok[None, :]
    out[mask] = sampled[mask]
    return out if channels == 3 else out[:, :, 0]


def rasterize(
    display_list: DisplayList,
    width: int,
    height: int,
    *,
    display_pixel_mm: float = 0.25,
    font_size: int = 12,
) -> np.ndarray:
    """Bitmap and vectors burned into one width×height RGB image (for film print and tests)."""
    from PIL import Image, ImageDraw, ImageFont

    layout = display_list.layout(width, height, display_pixel_mm=display_pixel_mm)
    base = resample_bitmap(display_list, width, height, layout.view)
    if base.ndim == 2:
        base = np.repeat(base[:, :, None], 3, axis=2)
    image = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(image)
    for g in layout.graphics:
        # PIL addresses whole device pixels: draw in the pixel that contains each point
        pts = [(math.floor(x), math.floor(y)) for x, y in g.points]
        if g.kind == "POINT" or len(pts) == 1:
            x, y = pts[0]
            draw.line([(x - 2, y), (x + 2, y)], fill=g.color)
            draw.line([(x, y - 2), (x, y + 2)], fill=g.color)
        elif g.filled and len(pts) > 2:
            draw.polygon(pts, fill=g.color, outline=g.color)
        else:
            draw.line([*pts, pts[0]] if g.closed else pts, fill=g.color, width=1)
    font = ImageFont.load_default(size=font_size) if hasattr(ImageFont, "load_default") else None
    for t in layout.texts:
        bbox = draw.textbbox((0, 0), t.text, font=font)
        x, y = t.text_origin(bbox[2] - bbox[0], bbox[3] - bbox[1])
        draw.text((x, y), t.text, fill=t.color, font=font)
        if t.anchor is not None and t.anchor_visible:
            ax, ay = t.anchor
            draw.line([(math.floor(ax), math.floor(ay)), (x, y + (bbox[3] - bbox[1]))], fill=t.color)
    return np.asarray(image)


def rect_points(rect: Sequence[float]) -> tuple[Point, ...]:
    x0, y0, x1, y1 = rect
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
