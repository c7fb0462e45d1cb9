"""Annotate → save as GSPS → DCMTK dcmpschk passes → reopen from the store → the same annotations."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.support.net import free_port, require_tool, running
from viewer.core.presentation import default_presentation_state, load_presentation_state, presentation_states_for
from viewer.core.settings import RemoteNode
from viewer.render.displaylist import GraphicItem, TextItem
from viewer.render.gsps import annotations, apply_presentation_state
from viewer.render.gsps_writer import GspsContent, build_gsps, save_gsps, send_gsps

# values exactly representable as float32 (Graphic Data is FL)
ITEMS = [
    GraphicItem("POLYLINE", ((10.5, 20.5), (30.5, 40.5), (50.25, 20.75)), "PIXEL"),
    GraphicItem("POLYLINE", ((5.0, 5.0), (25.0, 5.0), (25.0, 25.0), (5.0, 5.0)), "PIXEL", filled=True),
    GraphicItem("CIRCLE", ((64.0, 64.0), (72.0, 64.0)), "PIXEL"),
    GraphicItem("ELLIPSE", ((10.0, 80.0), (40.0, 80.0), (25.0, 70.0), (25.0, 90.0)), "PIXEL", filled=True),
    GraphicItem("POINT", ((100.5, 100.5),), "PIXEL"),
    GraphicItem("INTERPOLATED", ((0.125, 0.5), (0.25, 0.75), (0.5, 0.5)), "DISPLAY"),
    TextItem("Größe 12.5 mm", anchor=(30.5, 40.5), anchor_units="PIXEL", anchor_visible=True),
    TextItem("Of interest", box=((0.5, 0.0625), (0.875, 0.125)), box_units="DISPLAY", justification="CENTER"),
]


def dcmpschk_passes(path: Path) -> tuple[bool, str]:
    # dcmpschk exits 0 even when a check fails: read its verdict
    result = subprocess.run([require_tool("dcmpschk"), str(path)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    return "Test passed" in output and "failed" not in output and result.returncode == 0, output


def _comparable(item):
    if isinstance(item, GraphicItem):
        return "graphic", item.kind, item.points[0]
    return "text", item.text, None


@pytest.fixture
def ct_in_store(store):
    result = store.add_file(get_testdata_file("CT_small.dcm"))
    return store.instance(result.sop_instance_uid)


def test_round_trip_through_store_and_dcmpschk(store, ct_in_store, tmp_path):
    image = pydicom.dcmread(ct_in_store.path, stop_before_pixels=True)
    content = GspsContent(items=list(ITEMS), window_center=40, window_width=400, label="Reading 1", creator="Doe^Jo")
    added = save_gsps(store, [image], content)

    ok, output = dcmpschk_passes(added.path)
    assert ok, output
    states = presentation_states_for(store, ct_in_store)
    assert [s.sop_instance_uid for s in states] == [added.sop_instance_uid]
    assert states[0].label == "READING 1" and states[0].creator == "Doe^Jo"
    info = default_presentation_state(store, ct_in_store)
    assert info is not None and info.sop_instance_uid == added.sop_instance_uid
    ps = load_presentation_state(info)
    reread = annotations(ps, ct_in_store.sop_instance_uid, 0)
    assert sorted(map(_comparable, reread), key=str) == sorted(map(_comparable, ITEMS), key=str)
    by_key = {_comparable(i): i for i in ITEMS}
    for item in reread:
        original = by_key[_comparable(item)]
        if isinstance(item, GraphicItem):
            np.testing.assert_allclose(item.points, original.points)
            assert (item.units, item.filled) == (original.units, original.filled)
        else:
            assert (item.anchor, item.box, item.anchor_visible) == (
                original.anchor,
                original.box,
                original.anchor_visible,
            )
            assert item.justification == original.justification
    # the window we saved is the one applied when the state is reopened
    display_list = apply_presentation_state(ps, ct_in_store.path)
    assert display_list.bitmap.shape == (128, 128) and len(display_list.items) == len(ITEMS)


def test_dcmtk_reads_the_same_annotations(store, ct_in_store, tmp_path):
    image = pydicom.dcmread(ct_in_store.path, stop_before_pixels=True)
    ds = build_gsps([image], GspsContent(items=list(ITEMS)))
    path = tmp_path / "ps.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(
        [require_tool("dcmp2pgm"), "-v", "-p", str(path), ct_in_store.path, str(tmp_path / "x.pgm")],
        capture_output=True,
        text=True,
        errors="replace",
        cwd=tmp_path,
    )
    dump = out.stdout + out.stderr
    assert "Number of text objects: 2" in dump
    assert "Number of graphic objects: 6" in dump
    # DCMTK's coordinates for our polyline
    assert re.search(r"polyline filled=no units=pixel\s+I?:?\s*coordinates: 10.5\\20.5, 30.5\\40.5, 50.25\\20.75", dump)


def test_frame_specific_annotations_only_apply_to_their_image(store, ct_in_store):
    image = pydicom.dcmread(ct_in_store.path, stop_before_pixels=True)
    content = GspsContent(items=[], per_image={ct_in_store.sop_instance_uid: [ITEMS[0]]})
    ds = build_gsps([image], content)
    assert len(annotations(ds, ct_in_store.sop_instance_uid, 0)) == 1
    assert annotations(ds, "1.2.3.4", 0) == []


@pytest.mark.network
def test_send_gsps_with_c_store_to_dcmtk_storescp(ct_in_store, tmp_path):
    image = pydicom.dcmread(ct_in_store.path, stop_before_pixels=True)
    ds = build_gsps([image], GspsContent(items=list(ITEMS)))
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    cmd = [require_tool("storescp"), "-aet", "PACS", "-od", str(received), str(port)]
    with running(cmd, port=port, log_path=tmp_path / "storescp.log"):
        status = send_gsps(ds, RemoteNode(name="pacs", ae_title="PACS", host="127.0.0.1", port=port))
    assert status == 0
    files = list(received.iterdir())
    assert len(files) == 1
    assert pydicom.dcmread(files[0]).SOPInstanceUID == ds.SOPInstanceUID
    assert dcmpschk_passes(files[0])[0]
