"""Which images to print: the current image, the selected ones, the whole series or the study's key images.

From the viewer (`selection_for_views`), every item carries the viewport's view state, so the film shows what
the screen shows: the presentation state the user chose, their window, rotation, flips, inversion, zoom and
pan. `selection_for_series` builds items from the store alone (no viewer; the newest state that applies).
No Qt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from viewer.core.model import Instance
from viewer.core.presentation import default_presentation_state, key_image_series_for_study
from viewer.core.store import StudyStore
from viewer.print.job import FilmHeader, PrintItem, header_for_path, items_for_instances
from viewer.print.views import CapturedView

log = logging.getLogger(__name__)

SCOPES = ("current", "selected", "series", "key images")


@dataclass
class PrintSelection:
    """The candidate item lists the print dialog offers, one per scope, and the film header."""

    scopes: dict[str, list[PrintItem]] = field(default_factory=dict)
    header: FilmHeader = field(default_factory=FilmHeader)
    title: str = ""

    def items(self, scope: str, *, burn_in: bool = False) -> list[PrintItem]:
        """The items of a scope; without burn-in, views print without annotations and overlays."""
        chosen = [_copy(item) for item in self.scopes.get(scope, [])]
        for item in chosen:
            item.burn_overlays = burn_in
            if not burn_in:
                item.presentation_state_path = ""
                if item.view is not None:
                    item.view = item.view.without_graphics()
        return chosen

    def available(self) -> list[str]:
        return [scope for scope in SCOPES if self.scopes.get(scope)]


def _copy(item: PrintItem) -> PrintItem:
    return PrintItem(
        path=item.path,
        frame=item.frame,
        window=item.window,
        label=item.label,
        burn_overlays=item.burn_overlays,
        prerendered=item.prerendered,
        pixel_spacing_mm=item.pixel_spacing_mm,
        columns=item.columns,
        presentation_state_path=item.presentation_state_path,
        header=item.header,
        view=item.view,
    )


@dataclass(frozen=True)
class ShownImage:
    """An image as a viewport shows it: where it is stored, which frame, and the captured view."""

    path: str
    frame: int
    sop_instance_uid: str
    view: CapturedView


def selection_for_views(
    store: StudyStore | None,
    current: ShownImage,
    *,
    series: Sequence[ShownImage] = (),
    shown: Sequence[ShownImage] = (),
    series_uid: str = "",
    title: str = "",
) -> PrintSelection:
    """Scopes from the viewer: the active viewport's image, every image of its series with the viewport's
    view settings (`CapturedView.on_image`), the images the visible viewports show, and the study's key
    images (from the store: the newest state that applies, as no viewport shows them)."""
    header = header_for_path(current.path)
    current_item = PrintItem(path=current.path, frame=current.frame, view=current.view, header=header)
    scopes: dict[str, list[PrintItem]] = {"current": [current_item]}
    if series:
        scopes["series"] = [
            PrintItem(path=image.path, frame=image.frame, view=image.view, header=header) for image in series
        ]
    if shown:
        # Visible viewports may show other patients: each image says whose it is.
        headers: dict[str, FilmHeader] = {current.path: header}
        scopes["selected"] = [
            PrintItem(
                path=image.path,
                frame=image.frame,
                view=image.view,
                header=headers.setdefault(image.path, header_for_path(image.path)),
            )
            for image in shown
        ]
    if store is not None:
        instance = store.instance(current.sop_instance_uid) if current.sop_instance_uid else None
        study_uid = instance.study_uid if instance is not None else ""
        if study_uid:
            key_items, key_instances = key_image_items(store, study_uid)
            if key_items:
                scopes["key images"] = key_items
                _attach_presentation_states(store, {i.path: i for i in key_instances}, {"key images": key_items})
        if not title and series_uid:
            found = store.series(series_uid)
            title = found.series_description if found is not None else ""
    return PrintSelection(scopes, header, title or "Film")


def selection_for_series(
    store: StudyStore,
    series_uid: str,
    *,
    current: tuple[str, int] | None = None,
    selected: Sequence[tuple[str, int]] = (),
    window: object | None = None,
) -> PrintSelection:
    """Scopes for a series shown in the viewer; `current`/`selected` are (sop_instance_uid, frame) pairs."""
    instances = store.instances_for_series(series_uid)
    series_items = items_for_instances(instances, window=window)
    path_to_uid = {inst.path: inst.sop_instance_uid for inst in instances}
    scopes: dict[str, list[PrintItem]] = {"series": series_items}

    def pick(keys: Sequence[tuple[str, int]]) -> list[PrintItem]:
        wanted = set(keys)
        return [i for i in series_items if (path_to_uid.get(i.path, ""), i.frame) in wanted]

    if current is not None:
        scopes["current"] = pick([current])
    if selected:
        scopes["selected"] = pick(selected)
    elif current is not None:
        scopes["selected"] = scopes["current"]
    by_path = {inst.path: inst for inst in instances}
    study_uid = instances[0].study_uid if instances else ""
    if study_uid:
        key_items, key_instances = key_image_items(store, study_uid, window=window)
        scopes["key images"] = key_items
        by_path.update({inst.path: inst for inst in key_instances})
        _attach_presentation_states(store, by_path, scopes)
    header = header_for_path(instances[0].path) if instances else FilmHeader()
    series = store.series(series_uid)
    title = series.series_description if series is not None else ""
    return PrintSelection(scopes, header, title or "Film")


def key_image_items(
    store: StudyStore, study_uid: str, *, window: object | None = None
) -> tuple[list[PrintItem], list[Instance]]:
    """The frames the study's Key Object Selections flag, in KO order, without repeats (and their instances)."""
    items: list[PrintItem] = []
    instances: list[Instance] = []
    seen: set[tuple[str, int]] = set()
    for kos in key_image_series_for_study(store, study_uid):
        for instance, frame in kos.frame_list():
            if (instance.sop_instance_uid, frame) in seen:
                continue
            seen.add((instance.sop_instance_uid, frame))
            items.append(PrintItem(path=instance.path, frame=frame, window=window))
            instances.append(instance)
    return items, instances


def _attach_presentation_states(
    store: StudyStore, by_path: dict[str, Instance], scopes: dict[str, list[PrintItem]]
) -> None:
    """Each item gets the newest presentation state referencing its frame (burned in when asked)."""
    for items in scopes.values():
        for item in items:
            instance = by_path.get(item.path)
            if instance is None:
                continue
            try:
                state = default_presentation_state(store, instance, item.frame)
            except Exception as exc:
                log.warning("cannot look up presentation states for %s: %s", item.path, exc)
                continue
            if state is not None:
                item.presentation_state_path = state.path
