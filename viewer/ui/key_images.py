"""Key Object Selection and presentation-state series opened in the viewer (thin Qt).

A KO opens as a "Key images" virtual series: its referenced frames, in the order the KO lists them, with
its title and text shown beside the images. A presentation-state series opens the images it references
with that state applied.
"""

from __future__ import annotations

import logging

import pydicom

from viewer.core.presentation import KeyImageSeries, key_image_series
from viewer.render.series import SeriesStack, SliceRef
from viewer.ui.workers import run_in_background

log = logging.getLogger(__name__)


def key_image_stack(series: KeyImageSeries, pool=None) -> SeriesStack:
    slices = [
        SliceRef(instance.path, frame, instance.sop_instance_uid, instance.instance_number)
        for instance, frame in series.frame_list()
    ]
    return SeriesStack(slices, pool=pool)


def referenced_series_uid(ps_path: str) -> str:
    ds = pydicom.dcmread(ps_path, stop_before_pixels=True)
    for ref in ds.get("ReferencedSeriesSequence", []) or []:
        if ref.get("SeriesInstanceUID"):
            return str(ref.SeriesInstanceUID)
    return ""


def install_key_images(window) -> None:
    """Register the 'ko' and 'pr' openers; the KO's document view (if any) still shows its text."""
    store = window.ctx.store
    area = window.viewer_area
    if not hasattr(area, "open_stack"):
        return
    show_document = window.document_openers.get("ko")

    def show_key_images(series: KeyImageSeries) -> None:
        stack = key_image_stack(series, getattr(area, "pool", None))
        if not len(stack):
            window.statusBar().showMessage(f"{series.series_description}: none of its images is in the store.", 8000)
            return
        area.open_stack(stack, order_by_position=False)
        missing = len(series.missing)
        text = " — ".join(t for t in series.texts if t)
        note = f" ({missing} referenced image(s) not in the store)" if missing else ""
        window.key_images_shown = series
        window.statusBar().showMessage(f"{series.series_description}: {len(stack)} image(s){note}. {text}", 15000)

    def open_key_object(sop_instance_uid: str) -> None:
        instance = store.instance(sop_instance_uid)
        if instance is None:
            return
        run_in_background(
            key_image_series,
            store,
            instance,
            on_result=show_key_images,
            on_error=lambda exc: window.statusBar().showMessage(f"Cannot read the key object: {exc}", 8000),
        )
        if show_document is not None:
            show_document(sop_instance_uid)

    def open_presentation_state(sop_instance_uid: str) -> None:
        instance = store.instance(sop_instance_uid)
        if instance is None:
            return

        def opened(series_uid: str) -> None:
            if not series_uid or store.series(series_uid) is None:
                window.statusBar().showMessage("The images this presentation state refers to are not here.", 8000)
                return
            viewport = area.open_series(series_uid)
            menu = area.presentation_menu(viewport) if viewport is not None else None
            if menu is not None:
                menu.prefer(sop_instance_uid)

        run_in_background(referenced_series_uid, instance.path, on_result=opened)

    window.register_document_opener("ko", open_key_object)
    window.register_document_opener("pr", open_presentation_state)
