"""Film geometry: film sizes, orientation, Image Display Formats and the image boxes they make.

Everything here is pure arithmetic on the DICOM defined terms (PS3.3 C.13.5 / C.13.8), so the print
dialog's preview, the PDF writer and the Print SCU all lay a sheet out identically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MM_PER_INCH = 25.4

# Physical size of each Film Size ID in portrait orientation, (width, height) in millimetres.
FILM_SIZES_MM: dict[str, tuple[float, float]] = {
    "8INX10IN": (8 * MM_PER_INCH, 10 * MM_PER_INCH),
    "8_5INX11IN": (8.5 * MM_PER_INCH, 11 * MM_PER_INCH),
    "8INX12IN": (8 * MM_PER_INCH, 12 * MM_PER_INCH),
    "10INX12IN": (10 * MM_PER_INCH, 12 * MM_PER_INCH),
    "10INX14IN": (10 * MM_PER_INCH, 14 * MM_PER_INCH),
    "11INX14IN": (11 * MM_PER_INCH, 14 * MM_PER_INCH),
    "11INX17IN": (11 * MM_PER_INCH, 17 * MM_PER_INCH),
    "14INX14IN": (14 * MM_PER_INCH, 14 * MM_PER_INCH),
    "14INX17IN": (14 * MM_PER_INCH, 17 * MM_PER_INCH),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}

# The order the print dialog lists them in (smallest first, as film catalogues do).
FILM_SIZE_IDS: tuple[str, ...] = tuple(FILM_SIZES_MM)

# Requested Resolution ID (2020,0050) is printer-defined; these are the pixel densities we render at
# for each, chosen to match common dry laser imagers (STANDARD ~ 150 dpi, HIGH ~ 300 dpi).
RESOLUTION_DPI: dict[str, int] = {"": 150, "STANDARD": 150, "HIGH": 300}


class Orientation(StrEnum):
    PORTRAIT = "PORTRAIT"
    LANDSCAPE = "LANDSCAPE"


class FilmError(ValueError):
    """A film size, orientation or display format we cannot lay out; the message is for the user."""


def film_size_mm(film_size_id: str, orientation: Orientation | str = Orientation.PORTRAIT) -> tuple[float, float]:
    """(width, height) in millimetres of the film as it lies in the given orientation."""
    try:
        width, height = FILM_SIZES_MM[film_size_id.upper()]
    except KeyError:
        raise FilmError(f"unknown film size {film_size_id!r}") from None
    if Orientation(str(orientation).upper() if isinstance(orientation, str) else orientation) is Orientation.LANDSCAPE:
        return max(width, height), min(width, height)
    return min(width, height), max(width, height)


def film_size_pixels(film_size_id: str, orientation: Orientation | str, dpi: int) -> tuple[int, int]:
    """(width, height) in pixels of the whole film at `dpi`."""
    width_mm, height_mm = film_size_mm(film_size_id, orientation)
    return round(width_mm / MM_PER_INCH * dpi), round(height_mm / MM_PER_INCH * dpi)


@dataclass(frozen=True)
class Box:
    """One image box: 1-based Image Box Position and its rectangle as fractions of the film (0..1)."""

    position: int
    x: float
    y: float
    width: float
    height: float

    def pixels(self, film_width: int, film_height: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) in whole pixels; neighbouring boxes share edges without gaps or overlap."""
        left = round(self.x * film_width)
        top = round(self.y * film_height)
        right = round((self.x + self.width) * film_width)
        bottom = round((self.y + self.height) * film_height)
        return left, top, right - left, bottom - top


@dataclass(frozen=True)
class DisplayFormat:
    """A parsed Image Display Format (2010,0010): STANDARD\\C,R, ROW\\R1,R2,… or COL\\C1,C2,…."""

    kind: str  # "STANDARD", "ROW" or "COL"
    counts: tuple[int, ...]  # STANDARD: (columns, rows); ROW: images per row; COL: images per column

    @classmethod
    def parse(cls, text: str) -> DisplayFormat:
        match = re.fullmatch(r"\s*(STANDARD|ROW|COL)\\\s*(\d+(?:\s*,\s*\d+)*)\s*", text.upper())
        if not match:
            raise FilmError(f"unsupported image display format '{text}' (use STANDARD\\C,R, ROW\\… or COL\\…)")
        kind = match.group(1)
        counts = tuple(int(part) for part in match.group(2).split(","))
        if any(n < 1 or n > 32 for n in counts):
            raise FilmError(f"image display format '{text}': every count must be between 1 and 32")
        if kind == "STANDARD" and len(counts) != 2:
            raise FilmError(f"image display format '{text}': STANDARD needs columns,rows")
        return cls(kind, counts)

    @classmethod
    def standard(cls, columns: int, rows: int) -> DisplayFormat:
        return cls("STANDARD", (columns, rows))

    @property
    def text(self) -> str:
        return f"{self.kind}\\" + ",".join(str(n) for n in self.counts)

    @property
    def box_count(self) -> int:
        if self.kind == "STANDARD":
            return self.counts[0] * self.counts[1]
        return sum(self.counts)

    def boxes(self) -> list[Box]:
        """The image boxes in Image Box Position order.

        STANDARD and ROW number left to right, top to bottom; COL numbers top to bottom, left to right
        (PS3.3 C.13.5.1).
        """
        if self.kind == "STANDARD":
            columns, rows = self.counts
            return [
                Box(row * columns + col + 1, col / columns, row / rows, 1 / columns, 1 / rows)
                for row in range(rows)
                for col in range(columns)
            ]
        boxes: list[Box] = []
        lines = len(self.counts)
        for line, count in enumerate(self.counts):
            for index in range(count):
                if self.kind == "ROW":
                    boxes.append(Box(len(boxes) + 1, index / count, line / lines, 1 / count, 1 / lines))
                else:
                    boxes.append(Box(len(boxes) + 1, line / lines, index / count, 1 / lines, 1 / count))
        return boxes


def standard_formats(max_columns: int = 4, max_rows: int = 6) -> list[str]:
    """STANDARD\\C,R for every C ≤ max_columns, R ≤ max_rows, ordered by box count."""
    formats = [(c * r, c, r) for c in range(1, max_columns + 1) for r in range(1, max_rows + 1)]
    return [f"STANDARD\\{c},{r}" for _, c, r in sorted(formats)]


def fit_size(image_width: int, image_height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest (width, height) with the image's aspect ratio that fits the box (at least 1×1)."""
    if image_width <= 0 or image_height <= 0 or box_width <= 0 or box_height <= 0:
        return max(1, box_width), max(1, box_height)
    scale = min(box_width / image_width, box_height / image_height)
    return max(1, min(box_width, round(image_width * scale))), max(1, min(box_height, round(image_height * scale)))
