"""A blending state's superimposed image is read and decoded on a worker, never on the GUI thread: choosing
the state returns at once (the image shows without the blend meanwhile), and the screen then equals the
composition with the superimposed image."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from tests.ui.test_view_model import SIZE, _assert_screen_is_the_composition, _viewport, blending
from viewer.render import decode
from viewer.render.displaylist import rasterize
from viewer.render.view import compose


def test_set_presentation_with_a_blending_state_decodes_the_superimposed_image_off_the_gui_thread(
    qtbot, tmp_path: Path, monkeypatch
) -> None:
    path = Path(shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm"))
    over_path = Path(shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "superimposed.dcm"))
    image = pydicom.dcmread(path, stop_before_pixels=True)
    viewport = _viewport(qtbot, path)
    gui = threading.get_ident()

    # who opens and decodes the superimposed file (the real reader runs; this only records the thread)
    reads: list[tuple[str, int]] = []
    real_init, real_stored = decode.ImageSource.__init__, decode.ImageSource.stored_frame

    def init(self, p, *args, **kwargs):
        reads.append(("open " + Path(p).name, threading.get_ident()))
        real_init(self, p, *args, **kwargs)

    def stored_frame(self, index=0):
        reads.append(("decode " + self.path.name, threading.get_ident()))
        return real_stored(self, index)

    monkeypatch.setattr(decode.ImageSource, "__init__", init)
    monkeypatch.setattr(decode.ImageSource, "stored_frame", stored_frame)

    viewport.set_presentation(blending(image), superimposed=str(over_path), reset_view=True)
    assert viewport.superimposed_pending
    assert not [r for r in reads if r[0].endswith("superimposed.dcm") and r[1] == gui]

    qtbot.waitUntil(lambda: not viewport.superimposed_pending, timeout=10000)
    assert [r for r in reads if r[0] == "decode superimposed.dcm" and r[1] != gui]  # a worker decoded it
    assert not [r for r in reads if r[0].endswith("superimposed.dcm") and r[1] == gui]
    monkeypatch.undo()

    grabbed = _assert_screen_is_the_composition(viewport, superimposed=str(over_path))
    plain = rasterize(compose(viewport.view_state().replace(presentation=None)), SIZE, SIZE)
    assert not np.array_equal(grabbed, plain)  # the blend is on screen, not the plain image
    inside = grabbed[SIZE // 2 - 20 : SIZE // 2 + 20, SIZE // 2 - 20 : SIZE // 2 + 20].astype(int)
    assert np.abs(inside[:, :, 0] - inside[:, :, 1]).max() > 30  # the palette's colour
