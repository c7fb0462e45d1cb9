"""A series as a stack of frames, its geometry, and what the viewer shows around a frame (numpy, no Qt).

API
---
``SliceRef(path, frame, sop_instance_uid="", instance_number=None, position=(), orientation=())``  one
    displayable frame; `position`/`orientation` are Image Position/Orientation (Patient) from the index, () when
    the index has none (then the header is read).
``SeriesStack(slices, *, modality="")``; ``SeriesStack.from_store(store, series_uid)`` (image instances only,
    multi-frame instances expanded to their frames; in reading order at once when the index holds every slice's
    position and orientation: ``stack.ordered`` is then True), ``SeriesStack.from_instances(instances)``,
    ``SeriesStack.from_paths(paths)``.
    ``len(stack)``, ``stack[i]``, ``source(i) -> ImageSource`` (one per file, cached, thread-safe),
    ``header(i)`` (the frame's merged header), ``load_frame(i)`` (decode), ``key(i)`` (frame cache key),
    ``geometry(i) -> SliceGeometry | None``, ``position_order()`` / ``sort_by_position() -> bool`` (reading
    order, see `reading_order`; from the index when it has the planes, else reads every header),
    ``nearest_index(point)``,
    ``cine_rate() -> float | None`` (frames per second from Cine Rate, Recommended Display Frame Rate,
    Frame Time or Frame Time Vector).
``SliceGeometry.from_header(header)``: position, row/column direction cosines, pixel spacing, normal;
    ``pixel_to_patient(col, row)``, ``patient_to_pixel(point)``.
``reading_order(positions, orientations, instance_numbers) -> list[int] | None``  the order a reader scrolls.
``orientation_labels(geometry) -> dict[str, str]``  markers for the 'left', 'right', 'top', 'bottom' edges.
``reference_line(target, other) -> ((col0, row0), (col1, row1)) | None``  where `other`'s plane cuts `target`.
``annotations(header, *, frame_index, frame_count, window, zoom) -> dict[corner, list[str]]`` corner texts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from viewer.render.decode import ImageSource, SourcePool
from viewer.render.lut import LutData, Voi, Window


@dataclass(frozen=True)
class SliceRef:
    path: str
    frame: int = 0
    sop_instance_uid: str = ""
    instance_number: int | None = None
    position: tuple[float, ...] = ()  # Image Position (Patient) as indexed; () when the index has none
    orientation: tuple[float, ...] = ()  # Image Orientation (Patient) as indexed


def reading_order(
    positions: list[np.ndarray], orientations: list[np.ndarray], instance_numbers: list[int | None]
) -> list[int] | None:
    """Indices in the order a reader scrolls a stack, or None when no position order is defined.

    Slices are ordered along their common normal (PS3.3 C.7.6.2.1.1: position and orientation define the
    plane; the instance number carries no spatial meaning). The direction: when the instance numbers run
    monotonically along the positions, image 1 comes first (the order the modality meant, as RadiAnt, Horos and
    Weasis show it); otherwise the anatomical convention — head to feet for axial, right to left for sagittal,
    anterior to posterior for coronal (patient +x is left, +y posterior, +z head: PS3.3 C.7.6.2.1.1).
    """
    if len(positions) < 2 or len(orientations) != len(positions):
        return None
    normals = [np.cross(o[:3], o[3:]) for o in orientations]
    normal = normals[0]
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-6:
        return None
    if any(np.abs(n - normal).max() > 1e-3 for n in normals):
        return None
    distances = [float(p @ normal) for p in positions]
    if len(set(np.round(distances, 3))) < len(distances):
        return None  # several frames at one position (e.g. a time series): keep instance order
    order = sorted(range(len(positions)), key=lambda i: distances[i])
    numbers = [instance_numbers[i] for i in order]
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        steps = np.diff(np.array(numbers, dtype=float))
        if (steps > 0).all():
            return order
        if (steps < 0).all():
            return order[::-1]
    axis = int(np.argmax(np.abs(normal)))
    wanted = -1.0 if axis == 2 else 1.0  # descending z (head first); ascending x (right first) or y (anterior)
    return order if normal[axis] * wanted > 0 else order[::-1]


@dataclass(frozen=True)
class SliceGeometry:
    position: np.ndarray  # centre of the first transmitted pixel (mm, patient coordinates)
    row_direction: np.ndarray  # unit vector along a row (increasing column)
    column_direction: np.ndarray  # unit vector along a column (increasing row)
    spacing: tuple[float, float]  # (row spacing, column spacing) in mm
    rows: int
    columns: int

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_direction, self.column_direction)

    @classmethod
    def from_header(cls, header: Dataset) -> SliceGeometry | None:
        ipp, iop = header.get("ImagePositionPatient"), header.get("ImageOrientationPatient")
        if ipp is None or iop is None or len(ipp) != 3 or len(iop) != 6:
            return None
        spacing = header.get("PixelSpacing") or [1.0, 1.0]
        try:
            orientation = np.array([float(v) for v in iop])
            return cls(
                position=np.array([float(v) for v in ipp]),
                row_direction=orientation[:3],
                column_direction=orientation[3:],
                spacing=(float(spacing[0]), float(spacing[1])),
                rows=int(header.get("Rows", 0)),
                columns=int(header.get("Columns", 0)),
            )
        except (TypeError, ValueError):
            return None

    def pixel_to_patient(self, col: float, row: float) -> np.ndarray:
        return (
            self.position + col * self.spacing[1] * self.row_direction + row * self.spacing[0] * self.column_direction
        )

    def patient_to_pixel(self, point: np.ndarray) -> tuple[float, float]:
        d = np.asarray(point, dtype=float) - self.position
        return float(d @ self.row_direction) / self.spacing[1], float(d @ self.column_direction) / self.spacing[0]


class SeriesStack:
    def __init__(self, slices: Iterable[SliceRef], *, modality: str = "", pool: SourcePool | None = None) -> None:
        self.slices = list(slices)
        self.modality = modality
        self.pool = pool or SourcePool()
        self.ordered = False  # True once the slices are in reading order (no header read needed any more)

    @classmethod
    def from_store(cls, store, series_uid: str, *, pool: SourcePool | None = None) -> SeriesStack:
        series = store.series(series_uid)
        return cls.from_instances(
            store.instances_for_series(series_uid), modality=series.modality if series else "", pool=pool
        )

    @classmethod
    def from_instances(cls, instances: Iterable, *, modality: str = "", pool: SourcePool | None = None) -> SeriesStack:
        """A stack of index rows (`viewer.core.model.Instance`); ordered at once when they carry the planes.

        The index keeps Image Position/Orientation (Patient) so that the reading order is known before the first
        image is decoded; rows without them (older index) leave the order to `position_order` (header reads).
        """
        from viewer.core.model import DocumentKind, document_kind

        slices: list[SliceRef] = []
        for inst in instances:
            if document_kind(inst.sop_class_uid) is not DocumentKind.IMAGE or not inst.rows:
                continue
            frames = max(1, inst.frames)
            # an instance's indexed plane is its first frame's: only single-frame rows can use it
            position = tuple(getattr(inst, "image_position", ()) or ()) if frames == 1 else ()
            orientation = tuple(getattr(inst, "image_orientation", ()) or ()) if frames == 1 else ()
            for frame in range(frames):
                slices.append(
                    SliceRef(inst.path, frame, inst.sop_instance_uid, inst.instance_number, position, orientation)
                )
        stack = cls(slices, modality=modality, pool=pool)
        order = stack._indexed_order()
        if order is not None:
            stack.slices = [stack.slices[i] for i in order]
            stack.ordered = True
        elif len(stack.slices) < 2 or not all(len(r.position) == 3 and len(r.orientation) == 6 for r in slices):
            stack.ordered = len(stack.slices) < 2
        else:
            stack.ordered = True  # the index has every plane and they define no order: keep the instance order
        return stack

    def _indexed_order(self) -> list[int] | None:
        if len(self.slices) < 2:
            return None
        if not all(len(r.position) == 3 and len(r.orientation) == 6 for r in self.slices):
            return None
        return reading_order(
            [np.array(r.position, dtype=float) for r in self.slices],
            [np.array(r.orientation, dtype=float) for r in self.slices],
            [r.instance_number for r in self.slices],
        )

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path], *, pool: SourcePool | None = None) -> SeriesStack:
        slices: list[SliceRef] = []
        modality = ""
        pool = pool or SourcePool()
        for path in paths:
            source = pool.get(path)
            modality = modality or str(source.header.get("Modality", ""))
            number = source.header.get("InstanceNumber")
            for frame in range(source.num_frames):
                slices.append(
                    SliceRef(
                        str(path), frame, str(source.header.get("SOPInstanceUID", "")), int(number) if number else None
                    )
                )
        stack = cls(slices, modality=modality, pool=pool)
        stack.sort_by_position()
        return stack

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> SliceRef:
        return self.slices[index]

    def source(self, index: int) -> ImageSource:
        return self.pool.get(self.slices[index].path)

    def header(self, index: int) -> Dataset:
        return self.source(index).frame_header(self.slices[index].frame)

    def key(self, index: int) -> tuple[str, int]:
        ref = self.slices[index]
        return (ref.path, ref.frame)

    def load_frame(self, index: int) -> np.ndarray:
        return self.source(index).frame(self.slices[index].frame)

    def load_key(self, key: tuple[str, int]) -> np.ndarray:
        """Frame-cache loader: decode the frame a key names."""
        return self.pool.load(key)

    def geometry(self, index: int) -> SliceGeometry | None:
        return SliceGeometry.from_header(self.header(index))

    def position_order(self) -> list[SliceRef] | None:
        """The slices in reading order (`reading_order`), or None when no position order is defined.

        Uses the indexed planes when every slice has them; otherwise reads every header (slow for big series:
        call it off the GUI thread)."""
        if len(self.slices) < 2:
            return None
        slices = list(self.slices)
        order = self._indexed_order()
        if order is None:
            geometries = [SliceGeometry.from_header(self.pool.get(r.path).frame_header(r.frame)) for r in slices]
            if any(g is None for g in geometries):
                return None
            order = reading_order(
                [g.position for g in geometries],  # type: ignore[union-attr]
                [np.concatenate([g.row_direction, g.column_direction]) for g in geometries],  # type: ignore[union-attr]
                [self._instance_number(i) for i in range(len(slices))],
            )
        if order is None:
            return None
        return [slices[i] for i in order]

    def _instance_number(self, index: int) -> int | None:
        ref = self.slices[index]
        if ref.instance_number is not None:
            return ref.instance_number
        value = self.pool.get(ref.path).header.get("InstanceNumber")
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def sort_by_position(self) -> bool:
        """Order slices along their common normal; False (order kept) when undefined or already so."""
        ordered = self.position_order()
        self.ordered = True
        if ordered is None or ordered == self.slices:
            return False
        self.slices = ordered
        return True

    def nearest_index(self, point: np.ndarray, normal: np.ndarray | None = None) -> int | None:
        """The slice whose plane lies nearest to `point` (patient mm), for synchronised scrolling."""
        best, best_distance = None, float("inf")
        for i in range(len(self.slices)):
            g = self.geometry(i)
            if g is None:
                return None
            distance = abs(float((np.asarray(point) - g.position) @ g.normal))
            if distance < best_distance:
                best, best_distance = i, distance
        return best

    def cine_rate(self) -> float | None:
        if not self.slices:
            return None
        header = self.source(0).header
        for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
            value = header.get(keyword)
            if value:
                try:
                    return float(value)
                except (TypeError, ValueError):
                    pass
        frame_time = header.get("FrameTime")
        if frame_time:
            try:
                if float(frame_time) > 0:
                    return 1000.0 / float(frame_time)
            except (TypeError, ValueError):
                pass
        vector = header.get("FrameTimeVector")
        if vector and len(vector) > 1:
            times = [float(v) for v in list(vector)[1:] if float(v) > 0]
            if times:
                return 1000.0 / (sum(times) / len(times))
        return None


_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # +x is patient Left, +y Posterior, +z Head


def direction_label(vector: np.ndarray, *, threshold: float = 0.25) -> str:
    """Orientation letters for a direction, strongest axis first (e.g. 'LP' for an oblique)."""
    order = np.argsort(-np.abs(vector))
    letters = []
    for axis in order:
        component = vector[axis]
        if abs(component) < threshold:
            continue
        positive, negative = _AXIS_LETTERS[axis]
        letters.append(positive if component > 0 else negative)
    return "".join(letters[:3])


def orientation_labels(
    geometry: SliceGeometry | None, *, flip_h: bool = False, flip_v: bool = False, rotation: int = 0
) -> dict[str, str]:
    """Edge markers; `rotation` is clockwise degrees (multiple of 90) applied after the flips."""
    if geometry is None:
        return {}
    right, bottom = geometry.row_direction, geometry.column_direction
    if flip_h:
        right = -right
    if flip_v:
        bottom = -bottom
    for _ in range((rotation // 90) % 4):
        right, bottom = -bottom, right
    return {
        "right": direction_label(right),
        "left": direction_label(-right),
        "bottom": direction_label(bottom),
        "top": direction_label(-bottom),
    }


def reference_line(
    target: SliceGeometry, other: SliceGeometry
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Segment (col, row) where `other`'s plane crosses `target`'s image, None when parallel or outside."""
    n = other.normal
    a = target.spacing[1] * float(n @ target.row_direction)
    b = target.spacing[0] * float(n @ target.column_direction)
    d = float(n @ (target.position - other.position))
    if abs(a) < 1e-6 and abs(b) < 1e-6:
        return None
    width, height = target.columns - 1, target.rows - 1
    points: list[tuple[float, float]] = []
    if abs(b) > 1e-9:
        for col in (0.0, float(width)):
            row = -(a * col + d) / b
            if -1e-6 <= row <= height + 1e-6:
                points.append((col, row))
    if abs(a) > 1e-9:
        for row in (0.0, float(height)):
            col = -(b * row + d) / a
            if -1e-6 <= col <= width + 1e-6:
                points.append((col, row))
    unique: list[tuple[float, float]] = []
    for p in points:
        if all(abs(p[0] - q[0]) > 1e-6 or abs(p[1] - q[1]) > 1e-6 for q in unique):
            unique.append(p)
    if len(unique) < 2:
        return None
    return unique[0], unique[1]


def _text(header: Dataset, keyword: str) -> str:
    value = header.get(keyword, "")
    return "" if value is None else str(value).strip()


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def annotations(
    header: Dataset, *, frame_index: int, frame_count: int, voi: Voi | None, zoom: float, inverted: bool = False
) -> dict[str, list[str]]:
    """Corner texts: 'top_left' patient, 'top_right' study, 'bottom_left' image, 'bottom_right' display."""
    name = _text(header, "PatientName").replace("^", " ").strip()
    top_left = [name, f"ID: {_text(header, 'PatientID')}"]
    birth = _text(header, "PatientBirthDate")
    if birth:
        top_left.append(f"DOB: {_date(birth)} {_text(header, 'PatientSex')}".strip())
    top_right = [
        _text(header, "InstitutionName"),
        _text(header, "StudyDescription"),
        f"{_date(_text(header, 'StudyDate'))} {_text(header, 'StudyTime')[:6]}".strip(),
        _text(header, "SeriesDescription"),
    ]
    bottom_left = [
        f"Se: {_text(header, 'SeriesNumber')}  Im: {_text(header, 'InstanceNumber')}  ({frame_index + 1}/{frame_count})"
    ]
    location = _text(header, "SliceLocation")
    if location:
        try:
            bottom_left.append(f"Loc: {float(location):.2f} mm")
        except ValueError:
            bottom_left.append(f"Loc: {location}")
    thickness = _text(header, "SliceThickness")
    if thickness:
        bottom_left.append(f"Thk: {thickness} mm")
    if isinstance(voi, Window):
        wl = f"W: {voi.width:.0f} L: {voi.center:.0f}"
        if voi.function.upper() != "LINEAR":
            wl += f" {voi.function.lower()}"
    elif isinstance(voi, LutData):
        wl = voi.label
    else:
        wl = ""
    bottom_right = [f"Zoom: {zoom * 100:.0f}%", wl + ("  INV" if inverted else "")]
    if _text(header, "BurnedInAnnotation").upper() == "YES":
        bottom_right.append("Burned-in annotation")
    if _text(header, "LossyImageCompression") == "01":
        ratio = _text(header, "LossyImageCompressionRatio")
        bottom_right.append(f"Lossy{(' ' + ratio + ':1') if ratio else ''}")
    return {
        "top_left": [t for t in top_left if t],
        "top_right": [t for t in top_right if t],
        "bottom_left": [t for t in bottom_left if t],
        "bottom_right": [t for t in bottom_right if t],
    }
