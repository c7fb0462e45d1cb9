"""Measurements in image pixel coordinates, with their physical values (numpy, no Qt).

Points are (column, row) floats in the frame's pixel grid (pixel centres at integers). The Qt items in
`viewer/ui/viewer/` only draw these and move their points; every number shown comes from here.

API
---
``Calibration.from_header(header)``: mm per pixel and where it came from — 'Pixel Spacing' (calibrated in the
    patient), 'Imager Pixel Spacing' (at the detector, magnification not corrected), 'Nominal Scanned Pixel
    Spacing', or None (pixels only). ``Calibration.describe()`` says which.
``Distance(p0, p1)``: ``.pixels``, ``.millimetres(cal)``, ``.label(cal)``.
``Angle(p0, vertex, p1)``: ``.degrees``, ``.label()``.
``RoiStats``: n, mean, sd, min, max, area_mm2 (None if uncalibrated), area_pixels, units.
``EllipseRoi(center, radii)`` / ``RectangleRoi(p0, p1)``: ``.mask(rows, cols)``,
    ``.stats(modality_values, cal, units='HU')``, ``.label(...)``.
``Measurement = Distance | Angle | EllipseRoi | RectangleRoi``.
Editing (the viewer's select / move / edit tools): ``handles(m) -> list[Point]``, ``with_handle(m, i, point)``,
    ``translated(m, dx, dy)``, ``distance_to(m, point)`` (pixels to the outline, 0 inside an ROI).
``scale_bar(mm_per_screen_pixel, max_pixels) -> ScaleBar | None``: a round length (1, 2 or 5 × 10ⁿ mm) and its
    screen length, for the scale bar drawn over a calibrated image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

Point = tuple[float, float]


@dataclass(frozen=True)
class Calibration:
    row_mm: float | None = None  # spacing between rows (vertical)
    column_mm: float | None = None  # spacing between columns (horizontal)
    source: str = ""

    @property
    def calibrated(self) -> bool:
        return self.row_mm is not None and self.column_mm is not None

    @classmethod
    def from_header(cls, header: Dataset) -> Calibration:
        for keyword, name in (
            ("PixelSpacing", "Pixel Spacing"),
            ("ImagerPixelSpacing", "Imager Pixel Spacing"),
            ("NominalScannedPixelSpacing", "Nominal Scanned Pixel Spacing"),
        ):
            value = header.get(keyword)
            if value is not None and len(value) == 2:
                try:
                    row_mm, column_mm = float(value[0]), float(value[1])
                except (TypeError, ValueError):
                    continue
                if row_mm > 0 and column_mm > 0:
                    return cls(row_mm, column_mm, name)
        return cls()

    def describe(self) -> str:
        if not self.calibrated:
            return "uncalibrated (pixels)"
        if self.source == "Imager Pixel Spacing":
            return "Imager Pixel Spacing (at detector)"
        return self.source


@dataclass(frozen=True)
class Distance:
    p0: Point
    p1: Point

    @property
    def pixels(self) -> float:
        return math.hypot(self.p1[0] - self.p0[0], self.p1[1] - self.p0[1])

    def millimetres(self, cal: Calibration) -> float | None:
        if not cal.calibrated:
            return None
        dx = (self.p1[0] - self.p0[0]) * cal.column_mm  # type: ignore[operator]
        dy = (self.p1[1] - self.p0[1]) * cal.row_mm  # type: ignore[operator]
        return math.hypot(dx, dy)

    def label(self, cal: Calibration) -> str:
        mm = self.millimetres(cal)
        if mm is None:
            return f"{self.pixels:.1f} px (uncalibrated)"
        suffix = " (detector)" if cal.source == "Imager Pixel Spacing" else ""
        return f"{mm:.1f} mm{suffix}"


@dataclass(frozen=True)
class Angle:
    p0: Point
    vertex: Point
    p1: Point

    @property
    def degrees(self) -> float:
        a = np.subtract(self.p0, self.vertex)
        b = np.subtract(self.p1, self.vertex)
        na, nb = float(np.hypot(*a)), float(np.hypot(*b))
        if na == 0 or nb == 0:
            return 0.0
        cosine = float(np.clip(a @ b / (na * nb), -1.0, 1.0))
        return math.degrees(math.acos(cosine))

    def label(self) -> str:
        return f"{self.degrees:.1f}°"


@dataclass(frozen=True)
class RoiStats:
    n: int
    mean: float
    sd: float
    minimum: float
    maximum: float
    area_pixels: float
    area_mm2: float | None
    units: str = ""

    def label(self) -> str:
        area = f"{self.area_mm2:.1f} mm²" if self.area_mm2 is not None else f"{self.area_pixels:.0f} px²"
        units = f" {self.units}" if self.units else ""
        return f"Mean {self.mean:.1f}{units}  SD {self.sd:.1f}\nArea {area}  (n={self.n})"


def _stats(values: np.ndarray, mask: np.ndarray, area_pixels: float, cal: Calibration, units: str) -> RoiStats:
    selected = np.asarray(values)[mask].astype(np.float64)
    area_mm2 = area_pixels * cal.row_mm * cal.column_mm if cal.calibrated else None  # type: ignore[operator]
    if selected.size == 0:
        return RoiStats(0, float("nan"), float("nan"), float("nan"), float("nan"), area_pixels, area_mm2, units)
    return RoiStats(
        n=int(selected.size),
        mean=float(selected.mean()),
        sd=float(selected.std(ddof=1)) if selected.size > 1 else 0.0,
        minimum=float(selected.min()),
        maximum=float(selected.max()),
        area_pixels=area_pixels,
        area_mm2=area_mm2,
        units=units,
    )


@dataclass(frozen=True)
class EllipseRoi:
    center: Point
    radii: tuple[float, float]  # (horizontal, vertical) in pixels

    def mask(self, rows: int, columns: int) -> np.ndarray:
        rx, ry = max(self.radii[0], 1e-9), max(self.radii[1], 1e-9)
        yy, xx = np.ogrid[:rows, :columns]
        return ((xx - self.center[0]) / rx) ** 2 + ((yy - self.center[1]) / ry) ** 2 <= 1.0

    @property
    def area_pixels(self) -> float:
        return math.pi * self.radii[0] * self.radii[1]

    def stats(self, values: np.ndarray, cal: Calibration, units: str = "") -> RoiStats:
        return _stats(values, self.mask(*values.shape[:2]), self.area_pixels, cal, units)


@dataclass(frozen=True)
class RectangleRoi:
    p0: Point
    p1: Point

    def bounds(self) -> tuple[float, float, float, float]:
        x0, x1 = sorted((self.p0[0], self.p1[0]))
        y0, y1 = sorted((self.p0[1], self.p1[1]))
        return x0, y0, x1, y1

    def mask(self, rows: int, columns: int) -> np.ndarray:
        x0, y0, x1, y1 = self.bounds()
        yy, xx = np.ogrid[:rows, :columns]
        return (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)

    @property
    def area_pixels(self) -> float:
        x0, y0, x1, y1 = self.bounds()
        return (x1 - x0) * (y1 - y0)

    def stats(self, values: np.ndarray, cal: Calibration, units: str = "") -> RoiStats:
        return _stats(values, self.mask(*values.shape[:2]), self.area_pixels, cal, units)


Measurement = Distance | Angle | EllipseRoi | RectangleRoi


def value_units(header: Dataset) -> str:
    """Units of modality values: HU for CT, the Rescale Type or Modality LUT Type when given."""
    for keyword in ("RescaleType", "ModalityLUTType"):
        value = str(header.get(keyword, "") or "").strip()
        if value and value != "US":
            return value
    if str(header.get("Modality", "")).upper() == "CT":
        return "HU"
    return ""


def handles(m: Measurement) -> list[Point]:
    """The points a user drags to edit `m`: end points, the angle's three points, the ROI's corners / axis ends."""
    if isinstance(m, Distance):
        return [m.p0, m.p1]
    if isinstance(m, Angle):
        return [m.p0, m.vertex, m.p1]
    if isinstance(m, EllipseRoi):
        (cx, cy), (rx, ry) = m.center, m.radii
        return [(cx + rx, cy), (cx, cy + ry), (cx - rx, cy), (cx, cy - ry)]
    x0, y0, x1, y1 = m.bounds()
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def with_handle(m: Measurement, index: int, point: Point) -> Measurement:
    """`m` with handle `index` (see `handles`) moved to `point`; a ROI keeps the opposite corner / its centre."""
    point = (float(point[0]), float(point[1]))
    if isinstance(m, Distance):
        return Distance(point, m.p1) if index == 0 else Distance(m.p0, point)
    if isinstance(m, Angle):
        points = [m.p0, m.vertex, m.p1]
        points[index] = point
        return Angle(points[0], points[1], points[2])
    if isinstance(m, EllipseRoi):
        (cx, cy), (rx, ry) = m.center, m.radii
        if index in (0, 2):
            return EllipseRoi(m.center, (abs(point[0] - cx), ry))
        return EllipseRoi(m.center, (rx, abs(point[1] - cy)))
    corners = handles(m)
    return RectangleRoi(corners[(index + 2) % 4], point)


def translated(m: Measurement, dx: float, dy: float) -> Measurement:
    def move(p: Point) -> Point:
        return (p[0] + dx, p[1] + dy)

    if isinstance(m, Distance):
        return Distance(move(m.p0), move(m.p1))
    if isinstance(m, Angle):
        return Angle(move(m.p0), move(m.vertex), move(m.p1))
    if isinstance(m, EllipseRoi):
        return EllipseRoi(move(m.center), m.radii)
    return RectangleRoi(move(m.p0), move(m.p1))


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    ab = np.subtract(b, a)
    length2 = float(ab @ ab)
    t = 0.0 if length2 == 0 else float(np.clip(np.subtract(p, a) @ ab / length2, 0.0, 1.0))
    closest = np.add(a, t * ab)
    return float(np.hypot(*np.subtract(p, closest)))


def distance_to(m: Measurement, point: Point) -> float:
    """Pixels from `point` to the drawn measurement: its segments, or 0 inside an ROI (a click there selects it)."""
    if isinstance(m, Distance):
        return _segment_distance(point, m.p0, m.p1)
    if isinstance(m, Angle):
        return min(_segment_distance(point, m.p0, m.vertex), _segment_distance(point, m.vertex, m.p1))
    if isinstance(m, EllipseRoi):
        (cx, cy), (rx, ry) = m.center, m.radii
        rx, ry = max(rx, 1e-9), max(ry, 1e-9)
        r = math.hypot((point[0] - cx) / rx, (point[1] - cy) / ry)
        if r <= 1.0:
            return 0.0
        # along the ray from the centre: exact on the axes, close enough elsewhere for picking
        return (r - 1.0) / r * math.hypot(point[0] - cx, point[1] - cy)
    x0, y0, x1, y1 = m.bounds()
    dx = max(x0 - point[0], 0.0, point[0] - x1)
    dy = max(y0 - point[1], 0.0, point[1] - y1)
    return math.hypot(dx, dy)


@dataclass(frozen=True)
class ScaleBar:
    millimetres: float
    pixels: float  # screen pixels
    label: str


def scale_bar(mm_per_screen_pixel: float, max_pixels: float) -> ScaleBar | None:
    """The longest round length (1, 2, 5 × 10ⁿ mm) whose bar fits in `max_pixels` screen pixels."""
    if not (mm_per_screen_pixel > 0 and max_pixels > 0) or not math.isfinite(mm_per_screen_pixel):
        return None
    limit = mm_per_screen_pixel * max_pixels
    exponent = math.floor(math.log10(limit))
    best = None
    for e in (exponent - 1, exponent):
        for step in (1.0, 2.0, 5.0):
            length = step * 10.0**e
            if length <= limit * (1 + 1e-9):
                best = length
    if best is None:
        return None
    label = f"{best / 10:g} cm" if best >= 10 else f"{best:g} mm"
    return ScaleBar(best, best / mm_per_screen_pixel, label)
