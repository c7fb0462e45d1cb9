"""Faults: the app killed mid-receive, and a disk that fills up while a sender is storing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.corpus import write_series
from tests.support.net import free_port, require_tool, wait_for_port
from tests.support.store_files import stored_files
from viewer.core.context import AppContext
from viewer.core.store import StudyStore

REPO = Path(__file__).resolve().parents[2]


def _stored_files(store: StudyStore) -> set[Path]:
    return stored_files(store)


def _referenced_files(store: StudyStore) -> set[Path]:
    return {Path(i.path) for s in store.studies() for i in store.instances_for_study(s.study_uid)}


@contextlib.contextmanager
def _app_scp(home: Path, port: int):
    """The application's SCP in its own process, so that it can be killed like a crashing app."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.scp_process", str(home), str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=30)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.network
@pytest.mark.timeout(200)
def test_killed_mid_receive_then_restarted_store_is_consistent(tmp_path: Path) -> None:
    pytest.importorskip("viewer.net.scp")
    storescu = require_tool("storescu")
    home = tmp_path / "home"
    sent = write_series(tmp_path / "outgoing", 400)
    port = free_port()
    with _app_scp(home, port) as app:
        sender = subprocess.Popen(
            [
                storescu,
                "-aet",
                "MODALITY",
                "-aec",
                "LIGHTBOX",
                "+sd",
                "127.0.0.1",
                str(port),
                str(tmp_path / "outgoing"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            files = home / "store" / "files"
            deadline = time.monotonic() + 120
            # Kill somewhere in the middle of the transfer, with instances before and after the kill.
            while time.monotonic() < deadline and sum(1 for p in files.rglob("*") if p.is_file()) < 60:
                time.sleep(0.01)
            os.killpg(app.pid, signal.SIGKILL)
            app.wait(10)
        finally:
            sender.wait(60)
    assert sender.returncode != 0, "the sender should have seen the association die"

    ctx = AppContext.open(home)  # the restart: opening the data folder runs the store's recovery
    store = ctx.store
    assert store.integrity_problems() == []
    count = store.counts()["instances"]
    assert 0 < count < len(sent), count
    assert _stored_files(store) == _referenced_files(store), "orphan files left after recovery"
    assert list(store.tmp_dir.iterdir()) == []
    for inst in store.instances_for_study(store.studies()[0].study_uid):
        data = Path(inst.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == inst.sha256  # nothing half-written behind a row
    store.close()


def _can_mount_tmpfs(target: Path) -> str:
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(target)], capture_output=True, text=True
    )
    return "" if result.returncode == 0 else f"cannot mount tmpfs here: {result.stderr.strip()}"


@pytest.mark.network
@pytest.mark.timeout(150)
def test_disk_full_answers_a700_and_keeps_what_was_stored(tmp_path: Path) -> None:
    scp_module = pytest.importorskip("viewer.net.scp")
    storescu = require_tool("storescu")
    mount_point = tmp_path / "small-disk"
    problem = _can_mount_tmpfs(mount_point)
    if problem:
        pytest.skip(problem)
    try:
        store = StudyStore(mount_point / "store")
        port = free_port()
        from viewer.core.settings import LocalNode

        server = scp_module.StorageServer(store, LocalNode(ae_title="LIGHTBOX", port=port, bind_address="127.0.0.1"))
        server.start()
        try:
            wait_for_port(port)
            first = write_series(tmp_path / "first", 5)
            run = subprocess.run(
                [storescu, "-aec", "LIGHTBOX", "+sd", "127.0.0.1", str(port), str(tmp_path / "first")],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 0, run.stdout + run.stderr
            before = {
                i.sop_instance_uid: i.sha256 for s in store.studies() for i in store.instances_for_study(s.study_uid)
            }
            assert set(before) == set(first)

            big = _big_series(tmp_path / "big", 12)  # 12 × 400 KB into what is left of 2 MB
            flood = subprocess.run(
                [storescu, "-v", "-aec", "LIGHTBOX", "+sd", "127.0.0.1", str(port), str(big)],
                capture_output=True,
                text=True,
                timeout=90,
            )
        finally:
            server.stop()
        output = flood.stdout + flood.stderr
        assert "Refused: OutOfResources" in output or "0xa700" in output.lower(), output[-3000:]

        after = {i.sop_instance_uid: i.sha256 for s in store.studies() for i in store.instances_for_study(s.study_uid)}
        for uid, sha in before.items():
            assert after.get(uid) == sha, "an instance stored before the disk filled up was lost"
            path = Path(store.instance(uid).path)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        assert store.integrity_problems() == []
        assert _stored_files(store) == _referenced_files(store)
        assert list(store.tmp_dir.iterdir()) == []
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _big_series(folder: Path, count: int) -> Path:
    from pydicom.uid import generate_uid

    from tests.reliability.corpus import tiny_instance

    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(prefix=None), generate_uid(prefix=None)
    for i in range(1, count + 1):
        ds = tiny_instance(i, study_uid=study, series_uid=series, size=640)
        ds.PixelData = np.random.default_rng(i).integers(0, 255, 640 * 640, dtype=np.uint8).tobytes()
        ds.save_as(folder / f"big{i:03d}.dcm", enforce_file_format=True)
    return folder
