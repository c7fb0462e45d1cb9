"""Acceptance (issue 14): a busy reading room's ingest loses nothing and stores nothing twice.

Eight DCMTK `storescu` processes send 300 instances each to the application's SCP (its own process), while
`lightbox import` (the real CLI, a third process) imports 500 files carrying SOP Instance UIDs that the senders
are sending too (half of them byte-identical, half with other pixels: both duplicate paths race), and
`lightbox list` is run again and again in a fourth. Afterwards every instance the senders had acknowledged is
stored exactly once, each stored file is whole and is one of the versions sent, the store's integrity check
passes, every file under the store has a row and every row a file, and no `list` run crashed.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.reliability.corpus import tiny_instance
from tests.reliability.test_faults import _app_scp, _referenced_files, _stored_files
from tests.support.net import free_port, require_tool
from viewer.core.store import StudyStore

REPO = Path(__file__).resolve().parents[2]
SENDERS = 8  # the SCP's default per-host limit (8 of 10 associations): all of them from 127.0.0.1 at once
PER_SENDER = 300
IMPORTED = 500
SIZE = 64  # 64×64 pixels keeps 2,900 files small enough for a 2-core CI machine


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _lightbox(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", "--home", str(home), *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _write_corpus(root: Path) -> tuple[list[list[str]], dict[str, set[bytes]]]:
    """One study per sender under `root/send<k>`, and `root/import` with 500 files whose UIDs are among them.

    Returns the UIDs per sender and, per SOP Instance UID, the pixel data of every version written."""
    versions: dict[str, set[bytes]] = {}
    per_sender: list[list[str]] = []
    imported = 0
    (root / "import").mkdir(parents=True)
    for k in range(SENDERS):
        folder = root / f"send{k}"
        folder.mkdir()
        study, series = generate_uid(prefix=None), generate_uid(prefix=None)
        template = tiny_instance(1, study_uid=study, series_uid=series, size=SIZE)
        uids: list[str] = []
        for i in range(1, PER_SENDER + 1):
            ds = copy.copy(template)
            ds.file_meta = copy.copy(template.file_meta)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{series}.{i}"
            ds.InstanceNumber = i
            ds.PixelData = (np.arange(SIZE * SIZE, dtype=np.uint8) + i % 200).tobytes()
            ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)
            versions[ds.SOPInstanceUID] = {ds.PixelData}
            uids.append(ds.SOPInstanceUID)
            # Every 24 instances, 5 are imported too (8 × 300 / 24 × 5 = 500), spread over every sender.
            if (k * PER_SENDER + i) % 24 < 5:
                if imported % 2:
                    ds.PixelData = bytes(255 - b for b in ds.PixelData)  # same UID, other content
                    versions[ds.SOPInstanceUID].add(ds.PixelData)
                ds.save_as(root / "import" / f"{imported:05d}.dcm", enforce_file_format=True)
                imported += 1
        per_sender.append(uids)
    assert imported == IMPORTED
    return per_sender, versions


def _stored_count(files: Path) -> int:
    """Files the SCP has stored so far (its temp folder's partial files not counted)."""
    return sum(1 for p in files.rglob("*") if ".tmp" not in p.relative_to(files).parts and p.is_file())


def _storescu(storescu: str, port: int, folder: Path, index: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [storescu, "-aet", f"MODALITY{index}", "-aec", "LIGHTBOX", "+sd", "127.0.0.1", str(port), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.network
@pytest.mark.timeout(600)
def test_eight_senders_an_import_and_list_polling_store_every_acknowledged_instance_once(tmp_path: Path) -> None:
    storescu = require_tool("storescu")
    home = tmp_path / "home"
    per_sender, versions = _write_corpus(tmp_path / "corpus")
    port = free_port()
    list_runs: list[subprocess.CompletedProcess[str]] = []
    with _app_scp(home, port):
        senders = [_storescu(storescu, port, tmp_path / "corpus" / f"send{k}", k) for k in range(SENDERS)]
        # Start the import once the SCP is well under way, so that both write (and meet the other's copies of
        # the same UIDs) at once, rather than one finishing before the other begins.
        files = home / "store" / "files"
        deadline = time.monotonic() + 120
        while _stored_count(files) < 300 and all(p.poll() is None for p in senders):
            assert time.monotonic() < deadline, "the SCP stored nothing"
            time.sleep(0.05)
        importer = subprocess.Popen(
            [sys.executable, "-m", "viewer", "--home", str(home), "import", str(tmp_path / "corpus" / "import")],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Read every child's output while it runs, so that no pipe fills and stalls a sender.
        with ThreadPoolExecutor(len(senders) + 1) as pool:
            outputs = [pool.submit(p.communicate) for p in [*senders, importer]]
            deadline = time.monotonic() + 400
            while not all(f.done() for f in outputs) or len(list_runs) < 3:
                assert time.monotonic() < deadline, "the senders and the import did not finish"
                list_runs.append(_lightbox(home, "list"))
            texts = [f.result()[0] for f in outputs]

    for sender, text in zip(senders, texts, strict=False):
        assert sender.returncode == 0, text[-3000:]
        # storescu reports each refused C-STORE ("Store Failed" / a failure status); none may be refused.
        assert "Store Failed" not in text and "E:" not in text, text[-3000:]
    assert importer.returncode == 0, texts[-1][-3000:]
    crashed = [r for r in list_runs if r.returncode != 0 or "Traceback" in r.stderr or "Traceback" in r.stdout]
    assert not crashed, (crashed[0].stdout + crashed[0].stderr)[-3000:]

    store = StudyStore(home / "store")
    report = store.recover()
    assert not report.skipped, "another process still holds the store"
    assert report.rows_without_file == [] and report.rows_lost_unsynced == []
    acknowledged = {uid for uids in per_sender for uid in uids}
    rows = [(i.sop_instance_uid, Path(i.path)) for s in store.studies() for i in store.instances_for_study(s.study_uid)]
    assert len(rows) == len({uid for uid, _ in rows}), "an instance is stored more than once"
    assert {uid for uid, _ in rows} == acknowledged, f"{len(acknowledged - {u for u, _ in rows})} instances missing"
    assert store.counts()["instances"] == len(acknowledged)
    for uid, path in rows:  # each stored file whole, and one of the versions that was sent or imported
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == uid and ds.PixelData in versions[uid], uid
    assert store.integrity_problems() == []
    assert _stored_files(store) == _referenced_files(store), "orphan files, or rows without their file"
    store.close()
