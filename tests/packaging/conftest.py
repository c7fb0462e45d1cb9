"""One frozen build per test session (PyInstaller + tarball + .deb), shared by every packaging test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "packaging" / "build.py"


@dataclass(frozen=True)
class FrozenBuild:
    out_dir: Path
    app_dir: Path
    tarball: Path
    deb: Path
    build_log: str

    @property
    def binary(self) -> Path:
        return self.app_dir / "lightbox"


def require_build_tools() -> None:
    missing = [tool for tool in ("dpkg-deb", "objdump") if shutil.which(tool) is None]
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        missing.append("pyinstaller (pip install -e .[dist])")
    if missing:
        message = "cannot build the frozen app, missing: " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def frozen_build(tmp_path_factory: pytest.TempPathFactory) -> FrozenBuild:
    prebuilt = os.environ.get("LIGHTBOX_TEST_DIST")
    if prebuilt:
        # Test the output of an earlier `./dev dist` (or build.py --out DIR) instead of building again.
        out_dir = Path(prebuilt)
        (tarball,) = out_dir.glob("lightbox-*-linux-*.tar.gz")
        (deb,) = out_dir.glob("lightbox_*.deb")
        return FrozenBuild(out_dir=out_dir, app_dir=out_dir / "lightbox", tarball=tarball, deb=deb, build_log="")
    require_build_tools()
    out_dir = tmp_path_factory.mktemp("dist")
    work_dir = tmp_path_factory.mktemp("pyinstaller-work")
    # zstd instead of the release default xz: same package format, a minute less of CPU on a 2-core CI runner.
    result = subprocess.run(
        [
            sys.executable,
            str(BUILD_SCRIPT),
            "--out",
            str(out_dir),
            "--work",
            str(work_dir),
            "--deb-compression",
            "zstd",
        ],
        capture_output=True,
        text=True,
        timeout=480,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"packaging/build.py failed:\n{log[-6000:]}"
    print(result.stdout[-1200:])  # the size and start-time figures, visible with -s
    (tarball,) = out_dir.glob("lightbox-*-linux-*.tar.gz")
    (deb,) = out_dir.glob("lightbox_*.deb")
    return FrozenBuild(out_dir=out_dir, app_dir=out_dir / "lightbox", tarball=tarball, deb=deb, build_log=log)


def run_frozen(
    binary: Path, args: Sequence[str], *, home: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a frozen binary headless with its own data folder and nothing from the dev environment on its paths."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "QT_PLUGIN_PATH"))
    }
    env.update(QT_QPA_PLATFORM="offscreen", LIGHTBOX_HOME=str(home), HOME=str(home.parent))
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=home.parent
    )
