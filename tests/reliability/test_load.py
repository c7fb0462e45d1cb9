"""Load: 5 concurrent storescu processes × 500 instances each to our Storage SCP on loopback."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.corpus import write_series
from tests.support.net import free_port, require_tool, wait_for_port
from tests.support.store_files import stored_files
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore

SENDERS = 5
PER_SENDER = 500


@pytest.mark.network
@pytest.mark.timeout(280)
def test_five_concurrent_storescu_store_every_instance_exactly_once(tmp_path: Path) -> None:
    scp_module = pytest.importorskip("viewer.net.scp")
    storescu = require_tool("storescu")
    expected: set[str] = set()
    folders = []
    for n in range(SENDERS):
        folder = tmp_path / f"sender{n}"
        expected.update(write_series(folder, PER_SENDER))
        folders.append(folder)
    assert len(expected) == SENDERS * PER_SENDER

    store = StudyStore(tmp_path / "store")  # durable, as the application runs it
    port = free_port()
    local = LocalNode(ae_title="LIGHTBOX", port=port, bind_address="127.0.0.1", max_associations=SENDERS + 2)
    server = scp_module.StorageServer(store, local)
    server.start()
    started = time.monotonic()
    try:
        wait_for_port(port)
        senders = [
            subprocess.Popen(
                [storescu, "-aet", f"LOAD{n}", "-aec", "LIGHTBOX", "+sd", "127.0.0.1", str(port), str(folder)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for n, folder in enumerate(folders)
        ]
        outputs = []
        for proc in senders:
            try:
                out, _ = proc.communicate(timeout=240)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            outputs.append((proc.returncode, out))
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    for code, out in outputs:
        assert code == 0, out[-2000:]
        assert "Failed" not in out and "Error" not in out, out[-2000:]

    counts = store.counts()
    assert counts == {"studies": SENDERS, "series": SENDERS, "instances": SENDERS * PER_SENDER}
    stored = {i.sop_instance_uid for s in store.studies() for i in store.instances_for_study(s.study_uid)}
    assert stored == expected
    files = sorted(stored_files(store))
    assert len(files) == SENDERS * PER_SENDER  # one file per instance: nothing stored twice, nothing orphaned
    assert list(store.tmp_dir.iterdir()) == []
    assert store.integrity_problems() == []
    print(f"{SENDERS * PER_SENDER} instances from {SENDERS} senders in {elapsed:.1f} s")
    store.close()
