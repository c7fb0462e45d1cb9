"""One owner of recovery (finding 1): only a process holding the store alone recovers it.

Before, every `AppContext.open` (each CLI call, GUI start) recovered: while the SCP received, `lightbox list`
raced its partial temp files (FileNotFoundError) and took files mid-replace for power-cut losses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.corpus import write_series
from tests.reliability.test_faults import _app_scp, _referenced_files, _stored_files
from tests.support.net import free_port, require_tool
from viewer.core.store import StudyStore

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_recovery_is_skipped_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = StudyStore(root)
    (store.tmp_dir / "partial.part").write_bytes(b"another process is writing this")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from viewer.core.store import StudyStore; s = StudyStore(sys.argv[1]);"
            " print('open', flush=True); time.sleep(60)",
            str(root),
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        report = store.recover()
        assert report.skipped
        assert (store.tmp_dir / "partial.part").exists(), "another process's partial file was touched"
    finally:
        holder.kill()
        holder.wait(10)
    report = store.recover()  # alone now: the leftover of the dead process goes
    assert not report.skipped and report.removed_temp_files == 1
    assert list(store.tmp_dir.iterdir()) == []
    store.close()


@pytest.mark.network
@pytest.mark.timeout(240)
def test_list_and_import_while_the_scp_receives_lose_nothing_and_never_crash(tmp_path: Path) -> None:
    storescu = require_tool("storescu")
    home = tmp_path / "home"
    sent = write_series(tmp_path / "outgoing", 300)
    port = free_port()
    list_runs: list[subprocess.CompletedProcess[str]] = []
    with _app_scp(home, port):
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
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        importer = subprocess.Popen(
            [sys.executable, "-m", "viewer", "--home", str(home), "import", str(tmp_path / "outgoing")],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 150
        while (sender.poll() is None or importer.poll() is None or len(list_runs) < 3) and time.monotonic() < deadline:
            list_runs.append(
                subprocess.run(
                    [sys.executable, "-m", "viewer", "--home", str(home), "list"],
                    cwd=REPO,
                    env=_env(),
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            )
        sender_out, _ = sender.communicate(timeout=60)
        import_out, _ = importer.communicate(timeout=60)
    assert sender.returncode == 0, sender_out[-3000:]
    assert importer.returncode == 0, import_out[-3000:]
    crashed = [r for r in list_runs if r.returncode != 0 or "Traceback" in r.stderr]
    assert not crashed, crashed[0].stderr[-3000:]
    store = StudyStore(home / "store")
    report = store.recover()
    assert not report.skipped
    assert report.rows_without_file == [] and report.rows_lost_unsynced == []
    stored = {i.sop_instance_uid for s in store.studies() for i in store.instances_for_study(s.study_uid)}
    assert stored == set(sent), f"{len(set(sent) - stored)} acknowledged instances missing"
    assert store.counts()["instances"] == len(sent)
    assert store.integrity_problems() == []
    assert _stored_files(store) == _referenced_files(store)
    store.close()
