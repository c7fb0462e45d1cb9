"""Issue 15 finding 6: a stack opens at image 1 of its reading order and the wheel runs with the instance number.

A consistently ordered axial stack (instance 1 at the head, numbers running to the feet) is written to a real store in
shuffled file order; the viewer must open it at image 1 and wheel-down must go to image 2, as RadiAnt, Horos and
Weasis do. With the planes in the index the order is known before the first image is decoded (no header read).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from viewer.core.context import AppContext
from viewer.render.series import SeriesStack, reading_order
from viewer.ui.viewer import ViewerArea, Viewport

COUNT = 7
TOP_Z = 100.0


def _z_of(number: int) -> float:
    return TOP_Z - 2.5 * (number - 1)  # instance 1 is the most superior slice


def write_head_first_series(folder: Path, count: int = COUNT) -> list[Path]:
    """Axial CT, instance n at z = 100 - 2.5 (n - 1); pixel [0, 0] holds n; files written in shuffled order."""
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid()
    numbers = list(range(1, count + 1))
    shuffled = numbers[1::2] + numbers[::2]
    paths = []
    for number in shuffled:
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-50.0, -50.0, _z_of(number)]
        ds.SliceLocation = _z_of(number)
        pixels = base.pixel_array.copy()
        pixels[0, 0] = number
        ds.PixelData = pixels.astype(np.int16).tobytes()
        path = folder / f"file{len(paths):03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def indexed(instances: list) -> list:
    """The rows as the index keeps them since Image Position/Orientation (Patient) are store columns."""
    rows = []
    for inst in instances:
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        rows.append(
            dataclasses.replace(
                inst,
                image_position=tuple(float(v) for v in ds.ImagePositionPatient),
                image_orientation=tuple(float(v) for v in ds.ImageOrientationPatient),
            )
        )
    return rows


@pytest.fixture
def ctx(tmp_path: Path, lightbox_home: Path):
    context = AppContext.open(lightbox_home)
    for path in write_head_first_series(tmp_path):
        context.store.add_file(path)
    yield context
    context.store.close()


@pytest.fixture
def area(qtbot, ctx):
    widget = ViewerArea(ctx)
    qtbot.addWidget(widget)
    widget.resize(600, 500)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.close_cache()


def unindexed(instances: list) -> list:
    """Rows as an index from before the plane columns holds them."""
    return [dataclasses.replace(inst, image_position=(), image_orientation=()) for inst in instances]


def _series_uid(ctx) -> str:
    return ctx.store.series_for_study(ctx.store.studies()[0].study_uid)[0].series_uid


def _shown_number(viewport: Viewport) -> int:
    assert viewport._frame is not None
    return int(viewport._frame[0, 0])


def _wheel(viewport: Viewport, notches: int) -> None:
    view = viewport.view
    center = QPointF(view.width() / 2, view.height() / 2)
    event = QWheelEvent(
        center,
        view.mapToGlobal(center),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)


def test_reading_order_follows_agreeing_instance_numbers_else_anatomy() -> None:
    axial = [np.array([1.0, 0, 0, 0, 1, 0])] * 3
    positions = [np.array([0, 0, z]) for z in (10.0, 30.0, 20.0)]
    # numbers agree with head-to-feet: image 1 (z 30) first
    assert reading_order(positions, axial, [3, 1, 2]) == [1, 2, 0]
    # numbers running feet-to-head are followed too: they are consistent, image 1 first
    assert reading_order(positions, axial, [1, 3, 2]) == [0, 2, 1]
    # numbers that disagree with the positions: anatomical order, head first (descending z)
    assert reading_order(positions, axial, [1, 2, 3]) == [1, 2, 0]
    assert reading_order(positions, axial, [None, None, None]) == [1, 2, 0]
    # a normal pointing to the feet (column direction flipped) gives the same anatomical order
    flipped = [np.array([1.0, 0, 0, 0, -1, 0])] * 3
    assert reading_order(positions, flipped, [None, None, None]) == [1, 2, 0]
    # sagittal: patient right (-x) first; coronal: anterior (-y) first
    sagittal = [np.array([0, 1.0, 0, 0, 0, -1])] * 3
    assert reading_order([np.array([x, 0, 0]) for x in (5.0, -5.0, 0.0)], sagittal, [None] * 3) == [1, 2, 0]
    coronal = [np.array([1.0, 0, 0, 0, 0, -1])] * 3
    assert reading_order([np.array([0, y, 0]) for y in (5.0, -5.0, 0.0)], coronal, [None] * 3) == [1, 2, 0]
    # two frames at one position (a time series) or mixed orientations: no position order
    assert reading_order([positions[0], positions[0]], axial[:2], [1, 2]) is None
    assert reading_order(positions, [axial[0], sagittal[0], axial[0]], [1, 2, 3]) is None


def test_indexed_planes_order_the_stack_without_reading_a_header(ctx) -> None:
    rows = indexed(ctx.store.instances_for_series(_series_uid(ctx)))
    stack = SeriesStack.from_instances(rows, modality="CT")
    assert stack.ordered
    assert len(stack.pool) == 0  # no file was opened to know the order
    assert [ref.instance_number for ref in stack.slices] == list(range(1, COUNT + 1))
    assert [ref.position[2] for ref in stack.slices] == [_z_of(n) for n in range(1, COUNT + 1)]
    # the header-read path agrees with the indexed one
    plain = SeriesStack.from_instances(unindexed(ctx.store.instances_for_series(_series_uid(ctx))), modality="CT")
    assert not plain.ordered
    plain.sort_by_position()  # the store lists by instance number: already the reading order here
    assert [ref.sop_instance_uid for ref in plain.slices] == [ref.sop_instance_uid for ref in stack.slices]


def test_indexed_stack_opens_at_image_one_and_wheel_down_goes_to_image_two(area: ViewerArea, ctx, qtbot) -> None:
    stack = SeriesStack.from_instances(
        indexed(ctx.store.instances_for_series(_series_uid(ctx))), modality="CT", pool=area.pool
    )
    viewport = area.open_stack(stack)
    # known at the first image: nothing to wait for
    assert viewport.order_settled
    assert viewport.index == 0 and viewport.displayed_index == 0 and _shown_number(viewport) == 1
    assert f"(1/{COUNT})" in viewport.corner_labels["bottom_left"].text()
    assert "Im: 1 " in viewport.corner_labels["bottom_left"].text()
    _wheel(viewport, -1)  # wheel towards the user: next image
    assert viewport.index == 1
    qtbot.waitUntil(lambda: viewport.displayed_index == 1, timeout=5000)
    assert _shown_number(viewport) == 2
    _wheel(viewport, 1)
    assert viewport.index == 0


def test_unindexed_series_settles_on_image_one_after_the_header_sort(area: ViewerArea, ctx, qtbot) -> None:
    # rows without planes (an index from before the columns) fall back to the header read on a worker
    rows = unindexed(ctx.store.instances_for_series(_series_uid(ctx)))
    viewport = area.open_stack(SeriesStack.from_instances(rows, modality="CT", pool=area.pool))
    qtbot.waitUntil(lambda: viewport.order_settled, timeout=5000)
    qtbot.waitUntil(lambda: viewport.displayed_index == viewport.index, timeout=5000)
    assert viewport.index == 0 and _shown_number(viewport) == 1
    assert [ref.instance_number for ref in viewport.stack.slices] == list(range(1, COUNT + 1))
    _wheel(viewport, -1)
    qtbot.waitUntil(lambda: viewport.displayed_index == 1, timeout=5000)
    assert _shown_number(viewport) == 2


def test_scrolled_reader_keeps_the_slice_when_the_order_arrives(area: ViewerArea, ctx, qtbot) -> None:
    rows = unindexed(ctx.store.instances_for_series(_series_uid(ctx)))
    stack = SeriesStack.from_instances(rows, modality="CT", pool=area.pool)
    assert not stack.ordered
    viewport = area.viewports[0]
    viewport.set_stack(stack)
    viewport.set_index(3)
    current = stack.slices[3]
    viewport.reorder(stack, stack.position_order())
    assert stack.slices[viewport.index] == current
