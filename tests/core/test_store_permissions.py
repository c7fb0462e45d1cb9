"""Finding 11: the store, its index (with -wal and -shm) and its files are the user's alone, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.corpus import write_series

REPO = Path(__file__).resolve().parents[2]

# Imports a folder, then keeps the store open (so the -wal and -shm files exist) and prints ready.
_SCRIPT = """
import sys, time
from viewer.core.context import AppContext
from viewer.core.importer import import_paths
from pathlib import Path
ctx = AppContext.open(Path(sys.argv[1]))
report = import_paths(ctx.store, [sys.argv[2]])
assert report.imported > 0, report.details()
ctx.store.instance("x")
print("ready", flush=True)
time.sleep(60)
"""


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for path in [root, *root.rglob("*")]:
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_store_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    write_series(tmp_path / "in", 3)
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(home), str(tmp_path / "in")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(umask),  # the child process's own umask is what is tested
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        modes = _modes(home / "store")
    finally:
        proc.kill()
        proc.wait(10)
    assert {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"} <= set(modes)
    stored = [name for name in modes if name.startswith("files/") and len(Path(name).name) == 64]
    assert len(stored) == 3
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose, f"readable by others under umask {oct(umask)}: {loose}"
