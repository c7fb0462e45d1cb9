"""A dropdown of the presentation states for the image shown, plus the study's key-image series (thin Qt).

``PresentationMenu(store, overlay)`` is a QComboBox: "No presentation state", then the states that apply to
the current image/frame (newest first, `PresentationStateInfo.title`). Call ``set_image(instance, frame)``
when the viewport shows another image; the list is read in a background worker and the newest state is
applied by default (the user's window, zoom and pan stay; a state picked in the menu applies its own
settings once). ``prefer(uid)`` moves the viewport to the first image the state references and applies it;
``adopt_saved(add_result)`` shows a state the user just saved, clears the measurements it now holds (drawn
once) and returns the confirmation text for the status bar.
``key_image_menu(store, study_uid, on_open)`` builds a QMenu with one entry per KO
("Key images: For Teaching") and calls ``on_open(KeyImageSeries)``; the viewer opens its ``frame_list()``.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QComboBox, QMenu, QWidget

from viewer.core.model import Instance
from viewer.core.presentation import (
    KeyImageSeries,
    PresentationStateInfo,
    key_image_series_for_study,
    load_presentation_state,
    presentation_states_for,
)
from viewer.render import gsps
from viewer.ui.presentation_items import PresentationOverlay
from viewer.ui.workers import run_in_background

NONE_TEXT = "No presentation state"


class PresentationMenu(QComboBox):
    def __init__(self, store, overlay: PresentationOverlay, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.overlay = overlay
        self.states: list[PresentationStateInfo] = []
        self._image: tuple[str, int] | None = None
        self._applied_uid: str | None = None
        self._preferred_uid: str | None = None
        self.apply_default = True
        self.addItem(NONE_TEXT)
        # a state the user picks shows as it says (its window and displayed area apply once); one applied
        # by default while scrolling leaves the user's window, zoom and pan alone
        self.currentIndexChanged.connect(lambda index: self._chosen(index, explicit=True))

    def reset(self) -> None:
        """Forget the image and the applied state (the viewport now shows another series)."""
        self._image = None
        self._applied_uid = None
        self.overlay.ps = None  # the viewport forgot its state with the series

    def prefer(self, sop_instance_uid: str, *, go_to_reference: bool = True) -> None:
        """Apply this state (rather than the newest) once it is listed for the image shown.

        With `go_to_reference` the viewport first moves to the first image of its stack the state references
        (opening a PR series must land on an image the state applies to)."""
        self._preferred_uid = sop_instance_uid
        if sop_instance_uid in [info.sop_instance_uid for info in self.states]:
            self._listed(self.states)
            return
        if go_to_reference:
            run_in_background(_referenced_images, self.store, sop_instance_uid, on_result=self._go_to_reference)

    def _go_to_reference(self, references: list[tuple[str, tuple[int, ...]]]) -> None:
        viewport = self.overlay.viewport
        stack = viewport.stack
        if stack is None or not references:
            return
        for index, ref in enumerate(stack.slices):
            for uid, frames in references:
                if ref.sop_instance_uid == uid and (not frames or ref.frame + 1 in frames):
                    if index != viewport.index:
                        viewport.set_index(index)
                    return

    def adopt_saved(self, result) -> str:
        """A state the user just saved (an `AddResult`): it becomes the state shown, and the viewport's own
        measurements it now holds are cleared so they are drawn once. Returns the confirmation to show."""
        viewport = self.overlay.viewport
        viewport.clear_measurements()
        self._image = None  # list again: the new state is in the store now
        self.prefer(result.sop_instance_uid, go_to_reference=False)
        stack = viewport.stack
        if stack is not None and len(stack):
            instance = self.store.instance(stack[viewport.index].sop_instance_uid)
            if instance is not None:
                self.set_image(instance, stack[viewport.index].frame)
        return "Presentation state saved to the local store"

    def set_image(self, instance: Instance, frame_index: int = 0) -> None:
        key = (instance.sop_instance_uid, frame_index)
        if key == self._image:
            return
        self._image = key
        run_in_background(presentation_states_for, self.store, instance, frame_index, on_result=self._listed)

    def _listed(self, states: list[PresentationStateInfo]) -> None:
        self.states = states
        uids = [info.sop_instance_uid for info in states]
        # Scrolling to the next slice of a series the same state covers must keep the user's window,
        # zoom and pan: the state stays applied (its overlay follows the frame) rather than re-applied.
        keep = self._applied_uid if self._applied_uid in uids else None
        if self._preferred_uid in uids and self._preferred_uid != self._applied_uid:
            preferred, self._preferred_uid = self._preferred_uid, None
            self.blockSignals(True)
            self.clear()
            self.addItem(NONE_TEXT)
            for info in states:
                self.addItem(info.title, info.sop_instance_uid)
            self.blockSignals(False)
            self._select(uids.index(preferred) + 1)
            return
        self.blockSignals(True)
        self.clear()
        self.addItem(NONE_TEXT)
        for info in states:
            self.addItem(info.title, info.sop_instance_uid)
        if keep is not None:
            self.setCurrentIndex(uids.index(keep) + 1)
        self.blockSignals(False)
        if keep is not None:
            self.overlay.viewport.refresh_overlays()
        elif states and self.apply_default:
            self._select(1)  # the newest that applies
        else:
            self._select(0)

    def _select(self, index: int) -> None:
        self.blockSignals(True)
        self.setCurrentIndex(index)
        self.blockSignals(False)
        self._chosen(index)

    def _chosen(self, index: int, *, explicit: bool = False) -> None:
        if index <= 0 or index > len(self.states):
            if self._applied_uid is not None:
                self._applied_uid = None
                self.overlay.apply(None, reset_view=explicit)
            return
        info = self.states[index - 1]
        self._applied_uid = info.sop_instance_uid

        def loaded(result: tuple) -> None:
            if self._applied_uid != info.sop_instance_uid:
                return  # another state was chosen while this one was read
            ds, superimposed = result
            self.overlay.apply(ds, info.path, superimposed=superimposed, reset_view=explicit)

        run_in_background(_load_with_superimposed, self.store, info, on_result=loaded)


def _referenced_images(store, sop_instance_uid: str) -> list[tuple[str, tuple[int, ...]]]:
    """(SOP Instance UID, frame numbers) of the images a stored state references, in its order (worker)."""
    import pydicom

    instance = store.instance(sop_instance_uid)
    if instance is None:
        return []
    ds = pydicom.dcmread(instance.path, stop_before_pixels=True)
    if str(ds.get("SOPClassUID", "")) == gsps.BLENDING_PS:
        try:
            under, _over = gsps.blending_sources(ds)
        except gsps.PresentationStateError:
            return []
        return [(uid, ()) for uid in under]
    return [(uid, frames) for _series, uid, frames in gsps.referenced_images(ds)]


def _load_with_superimposed(store, info: PresentationStateInfo) -> tuple:
    """The state's dataset and, for a blending state, the path of its superimposed image (in a worker)."""
    ds = load_presentation_state(info)
    superimposed = None
    if str(ds.get("SOPClassUID", "")) == gsps.BLENDING_PS:
        try:
            _under, over = gsps.blending_sources(ds)
        except gsps.PresentationStateError:
            over = []
        for uid in over:
            instance = store.instance(uid)
            if instance is not None:
                superimposed = instance.path
                break
    return ds, superimposed


def key_image_menu(
    store, study_uid: str, on_open: Callable[[KeyImageSeries], None], parent: QWidget | None = None
) -> QMenu:
    menu = QMenu("Key images", parent)
    series_list = key_image_series_for_study(store, study_uid)
    if not series_list:
        action = menu.addAction("No key images")
        action.setEnabled(False)
    for series in series_list:
        label = series.series_description + (f" ({len(series.frame_list())})" if series.images else "")
        action = menu.addAction(label)
        action.setToolTip("\n".join(series.texts))
        action.triggered.connect(lambda _checked=False, s=series: on_open(s))
    return menu
