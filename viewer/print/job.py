"""Print jobs: what to print (frames), how (a preset of film-box / session parameters) and the sheets it makes.

A job is independent of where it goes: the same `FilmSheet`s are sent to a DICOM printer
(`viewer.print.scu`), written to PDF (`viewer.print.pdf`) or drawn in the dialog's preview.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from viewer.print.film import (
    MM_PER_INCH,
    RESOLUTION_DPI,
    DisplayFormat,
    FilmError,
    film_size_mm,
    film_size_pixels,
    fit_size,
)
from viewer.print.render import (
    PrintPixels,
    identification_font_px,
    identification_strip_height,
    normalise,
    render_for_print,
    render_with_presentation_state,
    resize,
    to_grayscale,
    to_rgb,
    with_identification,
)
from viewer.print.views import CapturedView, print_pixels

MEDIUM_TYPES = ("BLUE FILM", "CLEAR FILM", "MAMMO BLUE FILM", "MAMMO CLEAR FILM", "PAPER")
FILM_DESTINATIONS = ("PROCESSOR", "MAGAZINE", "BIN_1", "BIN_2")
PRIORITIES = ("HIGH", "MED", "LOW")
MAGNIFICATION_TYPES = ("", "REPLICATE", "BILINEAR", "CUBIC", "NONE")
POLARITIES = ("NORMAL", "REVERSE")
DECIMATE_CROP = ("", "DECIMATE", "CROP", "FAIL")


@dataclass
class PrintPreset:
    """Film session and film box parameters; an empty string / None means "leave it to the printer"."""

    film_size: str = "14INX17IN"
    orientation: str = "PORTRAIT"
    display_format: str = "STANDARD\\1,1"
    magnification: str = ""
    smoothing: str = ""
    border_density: str = ""
    empty_image_density: str = ""
    min_density: int | None = None
    max_density: int | None = None
    trim: str = ""  # YES / NO
    polarity: str = "NORMAL"
    configuration_information: str = ""
    requested_resolution: str = ""  # STANDARD / HIGH
    dpi: int = 0  # 0: from the requested resolution
    bits: int = 8  # 8 or 12 (grayscale)
    use_presentation_lut: bool = True
    illumination: int = 2000
    reflected_ambient_light: int = 10
    annotation_box: bool = False  # ask for annotation boxes even when identification is off (warn if refused)
    # Patient name, ID and study date on every film (a film without them is unacceptable): in the printer's
    # annotation boxes when it has them, else burned into each image box above the image.
    identify_patient: bool = True
    annotation_format_id: str = "ANNOTATION"
    copies: int = 1
    priority: str = "MED"
    medium_type: str = "BLUE FILM"
    film_destination: str = "PROCESSOR"
    decimate_crop: str = ""
    requested_image_size: bool = False  # true-size printing from the pixel spacing
    print_per_session: bool = False  # N-ACTION on the film session instead of each film box
    session_label: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> PrintPreset:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (raw or {}).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raises FilmError naming the first problem (bad film size, format, bit depth, copies…)."""
        film_size_mm(self.film_size, self.orientation)
        DisplayFormat.parse(self.display_format)
        if self.bits not in (8, 12):
            raise FilmError(f"bit depth must be 8 or 12, not {self.bits}")
        if self.copies < 1 or self.copies > 99:
            raise FilmError("number of copies must be between 1 and 99")
        if self.priority and self.priority not in PRIORITIES:
            raise FilmError(f"print priority must be one of {', '.join(PRIORITIES)}")
        if self.polarity and self.polarity not in POLARITIES:
            raise FilmError(f"polarity must be NORMAL or REVERSE, not {self.polarity!r}")
        if self.min_density is not None and self.max_density is not None and self.min_density >= self.max_density:
            raise FilmError("minimum density must be below maximum density")

    @property
    def effective_dpi(self) -> int:
        return self.dpi or RESOLUTION_DPI.get(self.requested_resolution.upper(), 150)


@dataclass
class PrintItem:
    """One printed image: a frame of a stored instance, optionally already rendered (burned-in GSPS)."""

    path: str
    frame: int = 0
    window: Any = None  # (center, width), a viewer.render.lut Window / LutData, or None for the file's own
    label: str = ""
    burn_overlays: bool = False
    prerendered: PrintPixels | None = None
    pixel_spacing_mm: float | None = None  # for true-size printing (Requested Image Size)
    columns: int = 0
    presentation_state_path: str = ""  # a GSPS burned in (shutters, overlays, annotations, transforms)
    header: FilmHeader | None = None  # whose image it is (burned on its box); None: the job's header
    view: CapturedView | None = None  # the item prints as that viewport composes it


@dataclass
class FilmHeader:
    """Who the film belongs to: shown in the PDF/preview header and sent as annotation text."""

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    institution: str = ""

    def lines(self) -> list[str]:
        name = self.patient_name.replace("^", " ").strip()
        first = "  ".join(p for p in (name, f"ID {self.patient_id}" if self.patient_id else "") if p)
        second = "  ".join(
            p
            for p in (
                f"DOB {_date(self.birth_date)}" if self.birth_date else "",
                f"Study {_date(self.study_date)}" if self.study_date else "",
                self.study_description,
                f"Acc {self.accession_number}" if self.accession_number else "",
            )
            if p
        )
        return [line for line in (first, second, self.institution) if line]

    def identification(self) -> list[str]:
        """What every film must carry (name, ID, study date; accession and institution when known), ≤ 2 lines."""
        name = self.patient_name.replace("^", " ").strip()
        first = "  ".join(
            p
            for p in (
                name or "(no name)",
                f"ID {self.patient_id}" if self.patient_id else "(no ID)",
                f"Study {_date(self.study_date)}" if self.study_date else "",
            )
            if p
        )
        second = "  ".join(
            p for p in (f"Acc {self.accession_number}" if self.accession_number else "", self.institution) if p
        )
        return [line for line in (first, second) if line]

    @property
    def empty(self) -> bool:
        return not (self.patient_name or self.patient_id or self.study_date)

    @classmethod
    def from_dataset(cls, ds: Any) -> FilmHeader:
        def text(keyword: str) -> str:
            value = ds.get(keyword, "")
            return "" if value is None else str(value).strip()

        return cls(
            patient_name=text("PatientName"),
            patient_id=text("PatientID"),
            birth_date=text("PatientBirthDate"),
            study_date=text("StudyDate"),
            study_description=text("StudyDescription"),
            accession_number=text("AccessionNumber"),
            institution=text("InstitutionName"),
        )


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


@dataclass
class FilmSheet:
    """One film: its index in the job and the items in Image Box Position order (None = empty box)."""

    index: int
    display_format: DisplayFormat
    items: list[PrintItem | None]


@dataclass
class FilmPayload:
    """What the Print SCU sends for one film box."""

    display_format: str
    images: list[PrintPixels | None]  # one per Image Box Position
    requested_sizes_mm: list[float | None]
    annotations: list[str] = field(default_factory=list)
    # Per box: the identification lines to burn above the image when the printer has no annotation boxes
    # (the images above leave room for them), and the text size in pixels.
    identification: list[list[str]] = field(default_factory=list)
    font_px: int = 0

    def burned(self) -> list[PrintPixels | None]:
        """The image boxes with the identification burned in (what goes to a printer without annotation boxes)."""
        out: list[PrintPixels | None] = []
        for index, image in enumerate(self.images):
            lines = self.identification[index] if index < len(self.identification) else []
            out.append(image if image is None or not lines else with_identification(image, lines, self.font_px))
        return out


Renderer = Callable[[PrintItem, int], PrintPixels]


def default_renderer(item: PrintItem, bits: int) -> PrintPixels:
    if item.view is not None:
        return print_pixels(item.view, bits)
    if item.prerendered is not None:
        return item.prerendered if item.prerendered.is_color else to_grayscale(item.prerendered, bits)
    if item.presentation_state_path:
        return render_with_presentation_state(item.path, item.frame, item.presentation_state_path, bits)
    return render_for_print(item.path, item.frame, window=item.window, bits=bits, burn_overlays=item.burn_overlays)


@dataclass
class PrintJob:
    items: list[PrintItem]
    preset: PrintPreset = field(default_factory=PrintPreset)
    header: FilmHeader = field(default_factory=FilmHeader)
    compatibility_single_image: bool = False
    color: bool = False  # render colour images in colour (printer has the Color meta class)
    title: str = ""

    def sheets(self) -> list[FilmSheet]:
        fmt = DisplayFormat.parse(self.preset.display_format)
        per_film = fmt.box_count
        sheets: list[FilmSheet] = []
        for index, start in enumerate(range(0, len(self.items), per_film)):
            chunk: list[PrintItem | None] = list(self.items[start : start + per_film])
            chunk += [None] * (per_film - len(chunk))
            sheets.append(FilmSheet(index, fmt, chunk))
        return sheets

    @property
    def film_pixels(self) -> tuple[int, int]:
        return film_size_pixels(self.preset.film_size, self.preset.orientation, self.preset.effective_dpi)

    def box_images(self, sheet: FilmSheet, renderer: Renderer = default_renderer) -> FilmPayload:
        """Each box's image rendered and resampled to fit its box at the film resolution, aspect kept.

        With patient identification on, each image fits below the band the identification needs, so
        `FilmPayload.burned()` stays inside the box.
        """
        film_w, film_h = self.film_pixels
        dpi = self.preset.effective_dpi
        font_px = identification_font_px(dpi)
        images: list[PrintPixels | None] = []
        sizes: list[float | None] = []
        identification: list[list[str]] = []
        for box, item in zip(sheet.display_format.boxes(), sheet.items):
            if item is None:
                images.append(None)
                sizes.append(None)
                identification.append([])
                continue
            _, _, box_w, box_h = box.pixels(film_w, film_h)
            lines = (item.header or self.header).identification() if self.preset.identify_patient else []
            box_h = max(1, box_h - identification_strip_height(lines, font_px))
            if item.view is not None:
                # A viewport's view is composed at the box's own resolution (its aspect ratio, its zoom
                # scaled to the box), not an enlarged screen grab; the resize below is then a no-op.
                view_w, view_h = fit_size(item.view.width, item.view.height, box_w, box_h)
                item = replace(item, view=item.view.at_size(view_w, view_h))
            pixels = self._colour_policy(renderer(item, self.preset.bits))
            requested_mm: float | None = None
            target_w, target_h = fit_size(pixels.width, pixels.height, box_w, box_h)
            if self.preset.requested_image_size and item.pixel_spacing_mm and item.view is None:
                width_mm = item.pixel_spacing_mm * (item.columns or pixels.width)
                true_w = round(width_mm / MM_PER_INCH * dpi)
                true_h = round(true_w * pixels.height / pixels.width)
                if true_w <= box_w and true_h <= box_h:
                    target_w, target_h = max(1, true_w), max(1, true_h)
                    requested_mm = round(width_mm, 2)
            images.append(PrintPixels(resize(pixels.array, target_w, target_h), pixels.bits))
            sizes.append(requested_mm)
            identification.append(lines)
        return FilmPayload(sheet.display_format.text, images, sizes, self.annotations(sheet), identification, font_px)

    def annotations(self, sheet: FilmSheet) -> list[str]:
        """Annotation box texts for a film: its first image's patient (a film holds one patient's images)."""
        first = next((item for item in sheet.items if item is not None), None)
        header = (first.header if first is not None else None) or self.header
        return header.identification() if self.preset.identify_patient else header.lines()

    def _colour_policy(self, pixels: PrintPixels) -> PrintPixels:
        if pixels.is_color and not self.color:
            return to_grayscale(pixels, self.preset.bits)
        return pixels

    def compose(
        self,
        sheet: FilmSheet,
        renderer: Renderer = default_renderer,
        *,
        dpi: int | None = None,
        burn_identification: bool = True,
    ) -> PrintPixels:
        """The whole film as one image (compatibility mode, PDF, preview), background = border density."""
        payload = self.box_images(sheet, renderer) if dpi is None else self._scaled(dpi).box_images(sheet, renderer)
        boxed = payload.burned() if burn_identification else payload.images
        preset = self.preset
        width_px, height_px = film_size_pixels(preset.film_size, preset.orientation, dpi or preset.effective_dpi)
        bits = preset.bits
        color = any(p is not None and p.is_color for p in boxed)
        border = density_to_pvalue(preset.border_density, preset, bits, default="BLACK")
        empty = density_to_pvalue(preset.empty_image_density, preset, bits, default=preset.border_density or "BLACK")
        if color:
            border8 = border * 255 // ((1 << bits) - 1)
            canvas = np.full((height_px, width_px, 3), border8, dtype=np.uint8)
        else:
            canvas = np.full((height_px, width_px), border, dtype=np.uint16)
        for box, image in zip(sheet.display_format.boxes(), boxed):
            x, y, w, h = box.pixels(width_px, height_px)
            if image is None:
                fill = empty if not color else empty * 255 // ((1 << bits) - 1)
                canvas[y : y + h, x : x + w] = fill
                continue
            if color:
                image = to_rgb(image)
            elif image.bits != bits:
                image = to_grayscale(image, bits)
            ih, iw = image.array.shape[:2]
            iw, ih = min(iw, w), min(ih, h)
            ox, oy = x + (w - iw) // 2, y + (h - ih) // 2
            canvas[oy : oy + ih, ox : ox + iw] = image.array[:ih, :iw]
        return normalise(canvas, bits) if not color else PrintPixels(canvas, 8)

    def _scaled(self, dpi: int) -> PrintJob:
        preset = PrintPreset.from_dict({**self.preset.to_dict(), "dpi": dpi})
        return PrintJob(self.items, preset, self.header, self.compatibility_single_image, self.color, self.title)

    def payloads(self, renderer: Renderer = default_renderer) -> Iterable[FilmPayload]:
        """What to send, film by film; in compatibility mode each film is one composed STANDARD\\1,1 image
        (the identification already burned into each of its boxes)."""
        for sheet in self.sheets():
            if self.compatibility_single_image:
                image = self.compose(sheet, renderer)
                yield FilmPayload("STANDARD\\1,1", [image], [None], self.annotations(sheet), [[]], 0)
            else:
                yield self.box_images(sheet, renderer)


def density_to_pvalue(density: str, preset: PrintPreset, bits: int, *, default: str = "BLACK") -> int:
    """A Border/Empty Image Density (BLACK, WHITE or hundredths of optical density) as a MONOCHROME2 value."""
    top = (1 << bits) - 1
    value = (density or default or "BLACK").strip().upper()
    if value == "BLACK":
        return 0
    if value == "WHITE":
        return top
    try:
        od = int(value)
    except ValueError:
        return 0
    low = preset.min_density if preset.min_density is not None else 20
    high = preset.max_density if preset.max_density is not None else 320
    fraction = min(1.0, max(0.0, (od - low) / max(1, high - low)))
    return round(top * (1.0 - fraction))


def items_for_frames(
    entries: Iterable[tuple[str, int]],
    *,
    window: Any = None,
) -> list[PrintItem]:
    """Expand (path, number_of_frames) pairs into one item per frame: multiframe images print frame by frame."""
    return [
        PrintItem(path=path, frame=frame, window=window)
        for path, frames in entries
        for frame in range(max(1, int(frames or 1)))
    ]


def items_for_instances(instances: Sequence[Any], *, window: Any = None) -> list[PrintItem]:
    """Print items for store `Instance` records (uses their `path` and `frames`), in the given order."""
    items = items_for_frames(((inst.path, inst.frames) for inst in instances), window=window)
    return _with_spacing(items)


def _with_spacing(items: list[PrintItem]) -> list[PrintItem]:
    import pydicom

    by_path: dict[str, tuple[float | None, int]] = {}
    for path, _group in itertools.groupby(items, key=lambda i: i.path):
        if path in by_path:
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            by_path[path] = (None, 0)
            continue
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        by_path[path] = (float(spacing[1]) if spacing else None, int(ds.get("Columns", 0) or 0))
    for item in items:
        item.pixel_spacing_mm, item.columns = by_path.get(item.path, (None, 0))
    return items


def header_for_path(path: str) -> FilmHeader:
    import pydicom

    try:
        return FilmHeader.from_dataset(pydicom.dcmread(path, stop_before_pixels=True))
    except Exception:
        return FilmHeader()
