"""Render speed without timing (issue 15): four viewports stepping together in a 2×2 layout, each with a
window change, cost one paint of each view per step (a view painted twice per frame halves the frame rate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.support.paints import PaintCounter
from viewer.core.context import AppContext
from viewer.render.lut import Window


def _series(ctx: AppContext, seed: int, slices: int = 6) -> str:
    study, series = generate_uid(), generate_uid()
    rng = np.random.default_rng(seed)
    for k in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
            ds.SOPClassUID,
            ds.SOPInstanceUID,
        )
        ds.PatientName, ds.PatientID, ds.Modality = "Paint^Count", f"P{seed}", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, generate_uid()
        ds.InstanceNumber, ds.SeriesNumber = k + 1, 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, -k], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        ds.PixelData = rng.integers(900, 1200, (64, 64)).astype(np.int16).tobytes()
        ctx.store.add_dataset(ds)
    return series


def test_four_viewports_stepping_together_paint_each_view_once_per_step(qtbot, tmp_path: Path) -> None:
    from viewer.ui.viewer import ViewerArea

    ctx = AppContext.open(tmp_path / "home")
    uids = [_series(ctx, seed) for seed in range(4)]
    area = ViewerArea(ctx)
    qtbot.addWidget(area)
    area.resize(800, 700)
    area.show()
    area.set_layout("2x2")
    grid = area.visible_viewports
    for uid, viewport in zip(uids, grid, strict=True):
        area.open_series(uid, viewport)
    qtbot.waitUntil(lambda: all(v.order_settled for v in grid), timeout=10000)
    keys = [v.stack.key(i) for v in grid for i in range(len(v.stack))]
    qtbot.waitUntil(
        lambda: (area.cache.prefetch(keys), all(area.cache.get(k) is not None for k in keys))[1], timeout=10000
    )
    qtbot.wait(100)  # the chooser's first listing and the labels' first layout are done

    counters = []
    for viewport in grid:
        counter = PaintCounter()
        viewport.view.viewport().installEventFilter(counter)
        counters.append(counter)
    steps = 4
    for step in range(1, steps + 1):
        for viewport in grid:
            viewport.voi = Window(40 + step, 400 + step)
            viewport.set_index(step)
        assert all(v.displayed_index == step for v in grid)  # cached: shown at once
        qtbot.wait(5)
    qtbot.wait(50)
    assert [c.count for c in counters] == [steps] * 4
    # the four series share one protocol and one window: one display table for all of them
    assert len({id(v.display_list.lut) for v in grid}) == 1
    area.close_cache()
