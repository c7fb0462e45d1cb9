"""The frozen (PyInstaller) app runs on its own: version, first run, codecs, Qt platform plugins."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.packaging.conftest import FrozenBuild, run_frozen
from tests.support.net import require_tool
from viewer import APP_NAME, __version__

pytestmark = pytest.mark.slow


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def codec_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Compressed test images and the uncompressed originals they must decode to."""
    from pydicom.data import get_testdata_file

    folder = tmp_path_factory.mktemp("codec-files")
    ct_native = Path(get_testdata_file("CT_small.dcm"))
    jpeg_ls = folder / "ct_jpeg_ls.dcm"
    dcmcjpls = require_tool("dcmcjpls")
    # Lossless JPEG-LS, so the frozen app's decode of it must equal the original pixel for pixel.
    subprocess.run([dcmcjpls, "--encode-lossless", str(ct_native), str(jpeg_ls)], check=True, capture_output=True)
    return {
        "jpeg_ls": jpeg_ls,
        "jpeg_ls_original": ct_native,
        "j2k": Path(get_testdata_file("MR_small_jp2klossless.dcm")),
        "j2k_original": Path(get_testdata_file("MR_small.dcm")),
    }


def render(binary: Path, source: Path, out: Path) -> np.ndarray:
    home = out.parent / "home"
    result = run_frozen(binary, ["render", str(source), str(out)], home=home)
    assert result.returncode == 0, f"render {source.name} failed:\n{result.stdout}\n{result.stderr}"
    pixels = read_png(out)
    assert pixels.size > 0 and pixels.std() > 0, "rendered image is empty or uniform"
    return pixels


def stored_instances(home: Path) -> int:
    index = home / "store" / "index.sqlite3"
    if not index.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1.0)) as db:
            return db.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
    except sqlite3.Error:  # created but not yet initialised by the app
        return 0


def variant_without(build: FrozenBuild, destination: Path, patterns: list[str]) -> Path:
    """A hard-linked copy of the bundle with some codec libraries removed, to force the other decoder."""
    shutil.copytree(build.app_dir, destination, symlinks=True, copy_function=os.link)
    removed = []
    for pattern in patterns:
        for path in destination.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    assert removed, f"nothing matched {patterns}: the bundle layout changed"
    return destination / "lightbox"


def test_version(frozen_build: FrozenBuild, tmp_path: Path) -> None:
    result = run_frozen(frozen_build.binary, ["--version"], home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{APP_NAME} {__version__}"


def test_first_run_creates_data_folder_database_and_settings(frozen_build: FrozenBuild, tmp_path: Path) -> None:
    from viewer.core.settings import Settings

    home = tmp_path / "fresh" / "Lightbox"
    home.parent.mkdir()
    result = run_frozen(frozen_build.binary, ["list", "--json"], home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []

    assert Settings.load(home / "settings.json") == Settings()
    json.loads((home / "settings.json").read_text())
    databases = list(home.rglob("*.sqlite3"))
    assert databases, f"no database under {home}: {sorted(p.name for p in home.rglob('*'))}"
    with sqlite3.connect(databases[0]) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"studies", "series", "instances"} <= tables


def test_import_then_list_from_frozen_app(frozen_build: FrozenBuild, tmp_path: Path, codec_files) -> None:
    home = tmp_path / "home"
    imported = run_frozen(frozen_build.binary, ["import", str(codec_files["jpeg_ls"])], home=home)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    listed = run_frozen(frozen_build.binary, ["list", "--json"], home=home)
    assert listed.returncode == 0, listed.stderr
    assert [study["patient_name"] for study in json.loads(listed.stdout)] == ["CompressedSamples^CT1"]


@pytest.mark.parametrize("kind", ["j2k", "jpeg_ls"])
def test_render_compressed_matches_original(frozen_build: FrozenBuild, tmp_path: Path, codec_files, kind) -> None:
    compressed = render(frozen_build.binary, codec_files[kind], tmp_path / f"{kind}.png")
    original = render(frozen_build.binary, codec_files[f"{kind}_original"], tmp_path / f"{kind}-original.png")
    assert np.array_equal(compressed, original)


# pydicom tries GDCM first, then pylibjpeg, then Pillow, so the full bundle decodes with GDCM. Hard-linked copies
# of the bundle with one codec family removed show that each of the others works frozen. JPEG-LS discriminates
# (only GDCM and pylibjpeg-libjpeg decode it); J2K may fall back to Pillow's OpenJPEG, so it is checked for equality.
@pytest.mark.parametrize(
    ("decoder", "removed"),
    [
        # pylibjpeg's plugins, found only through the entry-point metadata copied into the bundle.
        ("pylibjpeg", ["_internal/_gdcm"]),
        # GDCM, with pylibjpeg's codec plugins unregistered (their entry-point metadata removed).
        ("gdcm", ["_internal/pylibjpeg_libjpeg-*.dist-info", "_internal/pylibjpeg_openjpeg-*.dist-info"]),
    ],
)
def test_each_codec_family_is_bundled(
    frozen_build: FrozenBuild, tmp_path: Path, codec_files, decoder: str, removed: list[str]
) -> None:
    binary = variant_without(frozen_build, tmp_path / f"only-{decoder}", removed)
    for kind in ("jpeg_ls", "j2k"):
        compressed = render(binary, codec_files[kind], tmp_path / f"{kind}.png")
        original = render(frozen_build.binary, codec_files[f"{kind}_original"], tmp_path / f"{kind}-original.png")
        assert np.array_equal(compressed, original), f"{decoder} decoded {kind} differently"


def test_jpeg_ls_needs_the_bundled_entry_point_metadata(frozen_build: FrozenBuild, tmp_path: Path, codec_files) -> None:
    """Negative control: without GDCM and without pylibjpeg-libjpeg's dist-info, JPEG-LS cannot be decoded."""
    binary = variant_without(
        frozen_build, tmp_path / "no-metadata", ["_internal/_gdcm", "_internal/pylibjpeg_libjpeg-*.dist-info"]
    )
    result = run_frozen(binary, ["render", str(codec_files["jpeg_ls"]), str(tmp_path / "x.png")], home=tmp_path / "h")
    assert result.returncode != 0
    assert not (tmp_path / "x.png").exists()


def test_codec_metadata_is_bundled(frozen_build: FrozenBuild) -> None:
    internal = frozen_build.app_dir / "_internal"
    for distribution in ("pylibjpeg_libjpeg", "pylibjpeg_openjpeg", "pylibjpeg_rle"):
        (dist_info,) = internal.glob(f"{distribution}-*.dist-info")
        assert "pylibjpeg.pixel_data_decoders" in (dist_info / "entry_points.txt").read_text()
    # pydicom's 3 MB of test files stay out of the product.
    assert not list(internal.rglob("test_files"))
    assert (internal / "resources" / "icons" / "lightbox.svg").is_file()


def test_double_clicked_file_is_imported_and_gui_starts_headless(
    frozen_build: FrozenBuild, tmp_path: Path, codec_files
) -> None:
    """`lightbox FILE` as the desktop runs it (Exec=lightbox %F): import, then the GUI on the bundled Qt plugins."""
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "QT_PLUGIN_PATH"))}
    env.update(QT_QPA_PLATFORM="offscreen", LIGHTBOX_HOME=str(home), QT_DEBUG_PLUGINS="0")
    log_path = tmp_path / "gui.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(frozen_build.binary), str(codec_files["j2k"])], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline and process.poll() is None and not stored_instances(home):
                time.sleep(0.2)
            assert stored_instances(home) == 1, f"the file was not imported:\n{log_path.read_text()}"
            # A missing platform plugin or library aborts Qt within a second; the GUI instead keeps running.
            time.sleep(3.0)
            assert process.poll() is None, f"GUI exited with {process.returncode}:\n{log_path.read_text()}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert (home / "settings.json").is_file()
    assert "could not load the qt platform plugin" not in log_path.read_text().lower()
    listed = run_frozen(frozen_build.binary, ["list", "--json"], home=home)
    assert [study["patient_name"] for study in json.loads(listed.stdout)] == ["CompressedSamples^MR1"]


def test_tarball_is_self_contained(frozen_build: FrozenBuild, tmp_path: Path) -> None:
    with tarfile.open(frozen_build.tarball) as archive:
        archive.extractall(tmp_path / "unpacked", filter="tar")
    (top,) = (tmp_path / "unpacked").iterdir()
    assert top.name == f"lightbox-{__version__}"
    assert (top / "share" / "applications" / "lightbox.desktop").is_file()
    result = run_frozen(top / "lightbox", ["--version"], home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout
