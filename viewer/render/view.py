"""The view model: the state of one viewport and its ONE composition into a display list (numpy, no Qt).

Screen, film, PDF, thumbnails, the CLI `render` and image export all go through `compose`, so what is printed
is what is on screen and what is on screen is what the presentation state says.

API
---
``ViewState`` (frozen dataclass; change it with ``state.replace(...)`` / ``dataclasses.replace``)
    path                  the image file; sop_instance_uid its SOP Instance UID ("" = read from the file)
    frame                 0-based frame index in that file
    voi                   the user's `Window` / `LutData`; None = the state's Softcopy VOI, else the image's own
                          default (first window, first VOI LUT, else min/max) – a user's VOI wins over the state's
    presentation          path of the chosen presentation state, None = none (the chooser decides, not this
                          module); superimposed: the blending state's superimposed image (path), resolved by
                          the chooser
    rotation, flip_h, flip_v   the user's transform ON TOP of the state's: the picture after the state's
                          spatial transformation is flipped (horizontal, then vertical), then rotated clockwise
                          (0/90/180/270) – the order `series.orientation_labels` uses
    invert                the user's inversion on top of the state's presentation LUT (colour: 255 − RGB)
    zoom                  device pixels per image pixel; None = the displayed area's size mode (fit without one)
    pan                   image coordinates (before any transformation) at the viewport's centre; None = the
                          displayed area's centre
    show_overlays / show_shutters / show_annotations   what of the image/state is drawn
    items                 the user's measurements/annotations as render items (`GraphicItem` / `TextItem`, PIXEL
                          units, image coordinates; `measure.py` turns measurements into them)
    interpolation         `Interpolation.SMOOTH` (display default) or `Interpolation.NEAREST` (pixel inspection)
    ``state.rotated(degrees)``, ``state.flipped(horizontal=..., vertical=...)``: screen operations composed
    onto the current transform; ``state.reset()``: back to the image's/state's own settings (same image).
``PresentationKind``: GRAYSCALE / COLOR / PSEUDO_COLOR / BLENDING (value = SOP Class UID);
    ``PresentationKind.of(dataset)``.
``Interpolation``: SMOOTH / NEAREST.
``compose(state, *, source=None, stored=None, presentation=None, superimposed=None, output_bits=8,
          cache=None) -> DisplayList``
    `source` an open `ImageSource` for state.path, `stored` an already decoded stored frame, `presentation`
    the state's already loaded Dataset (else it is read from state.presentation), `superimposed` the blending
    state's second image (else state.superimposed), `cache` a `ComposeCache` (LUTs per (header, VOI, state),
    overlay masks, loaded states) so a scroll is one LUT `np.take` per frame. A state that does not reference
    this image/frame is ignored. Without a state the result equals `pipeline.render_frame` (the image's own
    window, overlays burned in) and ``DisplayList.lut`` is that LUT. The result carries ``image_bitmap`` (image
    orientation), ``bitmap`` (after the total spatial transformation), ``spatial`` (state ∘ user, as one
    rotation + horizontal flip), ``area`` (the state's displayed area, else the whole image), ``zoom``/``center``
    (the user's), ``items`` (the state's annotations then the user's) and ``lut``. While the view follows the
    displayed area (zoom None) the bitmap is black outside it, so screen and film show the same.
``combined_spatial(columns, rows, state_rotation, state_flip, rotation, flip_h, flip_v) -> SpatialTransform``
``render_view(state, width, height, **compose_kwargs) -> H×W×3 uint8``  compose + `displaylist.rasterize`
    (bitmap and vectors burned in, nearest neighbour) for a device of that size.
``load_presentation(path) -> Dataset``  read a state file (callers on the GUI thread pass `presentation=`).
``DecodedImage(path, frames=(0,))``  an `ImageSource` with those frames decoded up front (make it on a worker;
    the GUI thread passes it as `superimposed=`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from viewer.render import gsps
from viewer.render.decode import ImageSource, overlay_mask
from viewer.render.displaylist import DisplayedArea, DisplayList, Item, SpatialTransform, rasterize
from viewer.render.lut import DisplayLut, Voi, Window, build_display_lut, min_max_window, modality_lut
from viewer.render.pipeline import default_voi, render_color


class PresentationKind(Enum):
    """The Softcopy Presentation State IODs (PS3.3 A.33), by SOP Class UID."""

    GRAYSCALE = gsps.GRAYSCALE_PS
    COLOR = gsps.COLOR_PS
    PSEUDO_COLOR = gsps.PSEUDO_COLOR_PS
    BLENDING = gsps.BLENDING_PS

    @classmethod
    def of(cls, ds: Dataset) -> PresentationKind:
        try:
            return cls(str(ds.get("SOPClassUID", "")))
        except ValueError:
            return cls.GRAYSCALE


class Interpolation(Enum):
    SMOOTH = "smooth"
    NEAREST = "nearest"


# D4 elements as 2×2 integer matrices on image coordinates (y down): clockwise quarter turn and mirror.
_R90 = np.array([[0, -1], [1, 0]])
_H = np.array([[-1, 0], [0, 1]])
_V = np.array([[1, 0], [0, -1]])


def _rot(degrees: int) -> np.ndarray:
    return np.linalg.matrix_power(_R90, (degrees // 90) % 4)


def _decompose(m: np.ndarray) -> tuple[int, bool]:
    """M = H^flip · R^rotation (the `SpatialTransform` order)."""
    flip = round(float(np.linalg.det(m))) < 0
    r = _H @ m if flip else m
    for k in range(4):
        if np.array_equal(np.linalg.matrix_power(_R90, k), r):
            return 90 * k, flip
    raise ValueError("not a quarter-turn transform")


def _user_matrix(rotation: int, flip_h: bool, flip_v: bool) -> np.ndarray:
    m = np.eye(2, dtype=int)
    if flip_h:
        m = _H @ m
    if flip_v:
        m = _V @ m
    return _rot(rotation) @ m


@functools.lru_cache(maxsize=256)
def combined_spatial(
    columns: int, rows: int, state_rotation: int, state_flip: bool, rotation: int, flip_h: bool, flip_v: bool
) -> SpatialTransform:
    """The state's rotation/flip followed by the user's flips and rotation, as one `SpatialTransform`
    (a pure function of its arguments, asked on every frame shown: cached)."""
    state = (_H if state_flip else np.eye(2, dtype=int)) @ _rot(state_rotation)
    total_rotation, total_flip = _decompose(_user_matrix(rotation, flip_h, flip_v) @ state)
    return SpatialTransform(columns, rows, total_rotation, total_flip)


@dataclass(frozen=True)
class ViewState:
    """The state of one viewport (see the module docstring)."""

    path: str
    sop_instance_uid: str = ""
    frame: int = 0
    voi: Voi | None = None
    presentation: str | None = None
    superimposed: str | None = None
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False
    invert: bool = False
    zoom: float | None = None
    pan: tuple[float, float] | None = None
    show_overlays: bool = True
    show_shutters: bool = True
    show_annotations: bool = True
    items: tuple[Item, ...] = ()
    interpolation: Interpolation = Interpolation.SMOOTH

    def __post_init__(self) -> None:
        if self.rotation % 90:
            raise ValueError(f"rotation must be a multiple of 90, not {self.rotation}")
        object.__setattr__(self, "rotation", self.rotation % 360)
        object.__setattr__(self, "path", str(self.path))
        if self.presentation is not None:
            object.__setattr__(self, "presentation", str(self.presentation))
        if self.superimposed is not None:
            object.__setattr__(self, "superimposed", str(self.superimposed))

    def replace(self, **changes: Any) -> ViewState:
        return dataclasses.replace(self, **changes)

    def rotated(self, degrees: int = 90) -> ViewState:
        """Rotate what is on screen clockwise by `degrees`, whatever flips are set."""
        m = _rot(degrees) @ _user_matrix(self.rotation, self.flip_h, self.flip_v)
        return self._with_matrix(m)

    def flipped(self, *, horizontal: bool = False, vertical: bool = False) -> ViewState:
        """Mirror what is on screen left-right and/or top-bottom."""
        m = _user_matrix(self.rotation, self.flip_h, self.flip_v)
        if horizontal:
            m = _H @ m
        if vertical:
            m = _V @ m
        return self._with_matrix(m)

    def _with_matrix(self, m: np.ndarray) -> ViewState:
        # every quarter-turn transform has two decompositions; keep the one closest to the current flags
        candidates = [
            (int(flip_h != self.flip_h) + int(flip_v != self.flip_v), rotation, flip_h, flip_v)
            for flip_h in (False, True)
            for flip_v in (False, True)
            for rotation in (0, 90, 180, 270)
            if np.array_equal(_user_matrix(rotation, flip_h, flip_v), m)
        ]
        _, rotation, flip_h, flip_v = min(candidates)
        return self.replace(rotation=rotation, flip_h=flip_h, flip_v=flip_v)

    def reset(self) -> ViewState:
        """The image's (or the state's) own window and geometry; the choice of state and the items stay."""
        return self.replace(voi=None, rotation=0, flip_h=False, flip_v=False, invert=False, zoom=None, pan=None)

    @property
    def has_user_geometry(self) -> bool:
        return self.zoom is not None or self.pan is not None


def load_presentation(path: str | Path) -> Dataset:
    return pydicom.dcmread(str(path))


class DecodedImage(ImageSource):
    """An `ImageSource` whose `frames` were decoded when it was made (on a worker thread), so composing with
    it (a blending state's superimposed image) reads and decodes nothing on the calling thread."""

    def __init__(self, path: str | Path, frames: tuple[int, ...] = (0,)) -> None:
        super().__init__(path)
        self._decoded = {i: super(DecodedImage, self).frame(i) for i in frames if 0 <= i < self.num_frames}
        for i in self._decoded:
            self.frame_header(i)  # the per-frame header is parsed here too

    def frame(self, index: int = 0) -> np.ndarray:
        found = self._decoded.get(index)
        return found if found is not None else super().frame(index)


@dataclass
class ComposeCache:
    """What composing the next frame of the same view reuses (one per viewport / print job)."""

    max_luts: int = 8
    luts: OrderedDict[Hashable, DisplayLut] = field(default_factory=OrderedDict)
    overlay_masks: dict[tuple[str, int], np.ndarray | None] = field(default_factory=dict)
    presentations: dict[str, Dataset] = field(default_factory=dict)
    sources: OrderedDict[str, ImageSource] = field(default_factory=OrderedDict)
    colour: OrderedDict[Hashable, gsps.StateBitmap] = field(default_factory=OrderedDict)

    def lut(self, key: Hashable, build: Any) -> DisplayLut:
        found = self.luts.get(key)
        if found is None:
            found = build()
            self.luts[key] = found
            while len(self.luts) > self.max_luts:
                self.luts.popitem(last=False)
        else:
            self.luts.move_to_end(key)
        return found

    def presentation(self, path: str) -> Dataset:
        ds = self.presentations.get(path)
        if ds is None:
            ds = self.presentations[path] = load_presentation(path)
        return ds

    def source(self, path: str) -> ImageSource:
        src = self.sources.get(path)
        if src is None:
            src = self.sources[path] = ImageSource(path)
            while len(self.sources) > 4:
                self.sources.popitem(last=False)
        return src

    def image_overlays(self, source: ImageSource, path: str, frame: int) -> np.ndarray | None:
        key = (path, frame)
        if key not in self.overlay_masks:
            planes = source.overlays(frame)
            self.overlay_masks[key] = overlay_mask(planes, source.rows, source.columns) if planes else None
        return self.overlay_masks[key]


_LUT_KEYWORDS = (
    "RescaleSlope",
    "RescaleIntercept",
    "PhotometricInterpretation",
    "PresentationLUTShape",
    "BitsStored",
    "BitsAllocated",
    "PixelRepresentation",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
)


def _header_key(header: Dataset) -> tuple:
    # Two frames with the same LUT-relevant attributes share a table (the usual CT/MR series), across the
    # viewports that share a LUT store too: a Modality LUT counts by its content, never by object identity
    # (an id can be reused once its dataset is freed).
    attributes = tuple(str(header.get(k, "")) for k in _LUT_KEYWORDS)
    sequence = header.get("ModalityLUTSequence")
    if not sequence:
        return attributes, None
    item = sequence[0]
    data = item.get("LUTData")
    content = hash(data) if isinstance(data, bytes | int) else hash(tuple(data)) if data is not None else 0
    return attributes, (str(item.get("LUTDescriptor", "")), str(item.get("ModalityLUTType", "")), content)


def _voi_key(voi: Voi | None) -> Hashable:
    if isinstance(voi, Window) or voi is None:
        return voi
    return ("lut", voi.first_mapped, voi.bits, len(voi.data), hash(voi.data.tobytes()))


def image_voi(header: Dataset, stored: np.ndarray, voi: Voi | None) -> Voi:
    """The user's VOI, else the image's default, else the frame's min/max window."""
    if voi is not None:
        return voi
    found = default_voi(header)
    if found is not None:
        return found
    values = modality_lut(np.array([stored.min(), stored.max()], dtype=np.float64), header)
    return min_max_window(values)


def _applies(ps: Dataset, uid: str, frame: int) -> bool:
    return gsps.applies_to(ps, uid, frame)


def compose(
    state: ViewState,
    *,
    source: ImageSource | None = None,
    stored: np.ndarray | None = None,
    presentation: Dataset | None = None,
    superimposed: ImageSource | str | Path | None = None,
    output_bits: int = 8,
    cache: ComposeCache | None = None,
) -> DisplayList:
    """The one composition of a view (see the module docstring)."""
    cache = cache if cache is not None else ComposeCache()
    if source is None:
        source = cache.source(state.path)
    header = source.frame_header(state.frame)
    uid = state.sop_instance_uid or str(header.get("SOPInstanceUID", ""))
    ps = presentation
    if ps is None and state.presentation is not None:
        ps = cache.presentation(state.presentation)
    if ps is not None and not _applies(ps, uid, state.frame):
        ps = None
    rows, cols = source.rows, source.columns
    if ps is None:
        bitmap, lut = _plain_bitmap(state, source, header, stored, output_bits, cache)
        spatial = combined_spatial(cols, rows, 0, False, state.rotation, state.flip_h, state.flip_v)
        return DisplayList(
            bitmap=spatial.apply_to_array(bitmap),
            spatial=spatial,
            area=DisplayedArea.whole_image(cols, rows),
            items=list(state.items),
            image_bitmap=bitmap,
            zoom=state.zoom,
            center=state.pan,
            lut=lut,
        )
    kind = PresentationKind.of(ps)
    icc_applied = False
    if kind is PresentationKind.BLENDING:
        over = superimposed if superimposed is not None else state.superimposed
        if over is None:
            raise gsps.PresentationStateError("a blending state needs its superimposed image")
        over_src = over if isinstance(over, ImageSource) else cache.source(str(over))
        bitmap = gsps.blending_bitmap(ps, source, over_src, state.frame, 0)
        if state.invert:
            bitmap = 255 - bitmap
        lut = None
    else:
        bitmap, lut, icc_applied = _state_bitmap(state, ps, kind, source, header, uid, stored, output_bits, cache)
    area = gsps.displayed_area(ps, uid, state.frame, cols, rows)
    if state.zoom is None:
        bitmap = _clip_to_area(bitmap, area)
    state_rotation, state_flip = gsps.rotation_and_flip(ps)
    spatial = combined_spatial(cols, rows, state_rotation, state_flip, state.rotation, state.flip_h, state.flip_v)
    items: list[Item] = list(gsps.annotations(ps, uid, state.frame)) if state.show_annotations else []
    items.extend(state.items)
    return DisplayList(
        bitmap=spatial.apply_to_array(bitmap),
        spatial=spatial,
        area=area,
        items=items,
        layer_order=gsps.layer_order(ps),
        description=str(ps.get("ContentLabel", "")),
        icc_applied=icc_applied,
        image_bitmap=bitmap,
        zoom=state.zoom,
        center=state.pan,
        lut=lut,
    )


def _clip_to_area(bitmap: np.ndarray, area: DisplayedArea) -> np.ndarray:
    """Black outside the displayed area (PS3.3 C.10.4: only the area is displayed), so a painter that shows
    the whole bitmap (the screen) shows what `rasterize` shows. Not applied under a user's zoom/pan."""
    rows, cols = bitmap.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in area.image_rect())
    if x0 <= 0 and y0 <= 0 and x1 >= cols and y1 >= rows:
        return bitmap
    out = np.zeros_like(bitmap)
    r0, r1, c0, c1 = max(y0, 0), min(y1, rows), max(x0, 0), min(x1, cols)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = bitmap[r0:r1, c0:c1]
    return out


def _plain_bitmap(
    state: ViewState,
    source: ImageSource,
    header: Dataset,
    stored: np.ndarray | None,
    output_bits: int,
    cache: ComposeCache,
) -> tuple[np.ndarray, DisplayLut | None]:
    """No presentation state: exactly what `pipeline.render_frame` gives (its stages, with a cached LUT)."""
    frame = stored if stored is not None else source.frame(state.frame)
    if source.is_color:
        pixels = render_color(frame, invert=state.invert)
        lut = None
        max_output = 255
    else:
        voi = image_voi(header, frame, state.voi)
        stored_range = (int(frame.min()), int(frame.max())) if source.bits_allocated > 16 else None
        key = ("plain", _header_key(header), _voi_key(voi), state.invert, output_bits, stored_range)
        lut = cache.lut(
            key,
            lambda: build_display_lut(
                header, voi, output_bits=output_bits, invert=state.invert, stored_range=stored_range
            ),
        )
        pixels = lut(frame)
        max_output = lut.max_output
    if state.show_overlays:
        mask = cache.image_overlays(source, state.path, state.frame)
        if mask is not None and mask.any():
            pixels = pixels.copy()
            pixels[mask] = 255 if pixels.ndim == 3 else max_output
    return pixels, lut


def _state_bitmap(
    state: ViewState,
    ps: Dataset,
    kind: PresentationKind,
    source: ImageSource,
    header: Dataset,
    uid: str,
    stored: np.ndarray | None,
    output_bits: int,
    cache: ComposeCache,
) -> tuple[np.ndarray, DisplayLut | None, bool]:
    ps_key = (id(ps), str(ps.get("SOPInstanceUID", "")))
    options = dict(
        stored=stored,
        voi=state.voi,
        invert=state.invert,
        show_overlays=state.show_overlays,
        show_shutters=state.show_shutters,
        output_bits=output_bits,
    )
    if kind is PresentationKind.COLOR:
        # an ICC conversion costs tens of milliseconds: keep the last few results
        key = (ps_key, state.path, state.frame, state.invert, state.show_overlays, state.show_shutters)
        made = cache.colour.get(key)
        if made is None:
            made = gsps.presentation_bitmap(ps, source, state.frame, **options)
            cache.colour[key] = made
            while len(cache.colour) > 4:
                cache.colour.popitem(last=False)
        return made.bitmap, None, made.icc_applied
    # the VOI is resolved first so the slices of a series that share a window share one table
    voi = state.voi if state.voi is not None else gsps.state_voi(ps, header, uid, state.frame)
    voi_key = _voi_key(voi)
    if kind is PresentationKind.PSEUDO_COLOR:
        key = ("pseudo", ps_key, _header_key(header), voi_key)
        lut = cache.lut(key, lambda: gsps.pseudo_color_table(ps, header, uid, state.frame, voi=voi))
    else:
        key = ("grey", ps_key, _header_key(header), voi_key, state.invert, output_bits)
        lut = cache.lut(
            key,
            lambda: gsps.grayscale_lut(
                ps, header, uid, state.frame, voi=voi, invert=state.invert, output_bits=output_bits
            ),
        )
    made = gsps.presentation_bitmap(ps, source, state.frame, lut=lut, **options)
    return made.bitmap, made.lut, made.icc_applied


def render_view(state: ViewState, width: int, height: int, **compose_kwargs: Any) -> np.ndarray:
    """The composed view burned into a width×height RGB image (film, PDF, export, tests)."""
    return rasterize(compose(state, **compose_kwargs), width, height)
