"""The .deb: its contents, its control data, and a real `dpkg -i` into a clean root."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import FrozenBuild, run_frozen
from viewer import APP_NAME, __version__

pytestmark = pytest.mark.slow


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def installed_root(frozen_build: FrozenBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean root with nothing in it but an empty dpkg database, with the .deb installed by dpkg -i."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    root = tmp_path_factory.mktemp("clean-root")
    for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / folder).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    # The root holds no libc etc., so dependencies are forced; maintainer scripts run outside a chroot (the root has
    # no shell) and get DPKG_ROOT, which the postinst honours when refreshing the MIME/desktop/icon caches.
    command = [
        "dpkg",
        f"--root={root}",
        "--force-script-chrootless",
        "--force-depends",
        "--log=/dev/null",
        "-i",
        str(frozen_build.deb),
    ]
    if os.geteuid() != 0:
        command.insert(1, "--force-not-root")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_contents_list_binary_desktop_file_and_icon(frozen_build: FrozenBuild) -> None:
    listing = dpkg_deb("--contents", str(frozen_build.deb))
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for expected in (
        "/opt/lightbox/lightbox",
        "/usr/bin/lightbox",
        "/usr/share/applications/lightbox.desktop",
        "/usr/share/icons/hicolor/256x256/apps/lightbox.png",
        "/usr/share/icons/hicolor/48x48/apps/lightbox.png",
        "/usr/share/icons/hicolor/scalable/apps/lightbox.svg",
        "/usr/share/mime/packages/lightbox-dicom.xml",
    ):
        assert expected in paths, f"{expected} missing from the .deb"
    binary_line = next(line for line in listing.splitlines() if line.endswith("./opt/lightbox/lightbox"))
    assert binary_line.startswith("-rwxr-xr-x root/root")


def test_control_fields(frozen_build: FrozenBuild) -> None:
    fields = dict(
        line.split(": ", 1) for line in dpkg_deb("--field", str(frozen_build.deb)).splitlines() if ": " in line
    )
    assert fields["Package"] == "lightbox"
    assert fields["Version"] == __version__
    assert (
        fields["Architecture"]
        == subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    )
    assert "libc6" in fields["Depends"]
    assert int(fields["Installed-Size"]) > 10_000


def test_installed_binary_runs(installed_root: Path, tmp_path: Path) -> None:
    for installed in (installed_root / "usr/bin/lightbox", installed_root / "opt/lightbox/lightbox"):
        result = run_frozen(installed, ["--version"], home=tmp_path / "home")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{APP_NAME} {__version__}"


def test_desktop_entry_and_mime_types_installed(installed_root: Path) -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(installed_root / "usr/share/applications/lightbox.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split()[0] == "lightbox"
    assert (installed_root / "usr/bin" / desktop["Exec"].split()[0]).exists()
    assert (installed_root / f"usr/share/icons/hicolor/256x256/apps/{desktop['Icon']}.png").is_file()
    mime_types = desktop["MimeType"].rstrip(";").split(";")
    assert "application/dicom" in mime_types

    # The postinst ran update-mime-database on the installed XML: the compiled database knows our types.
    mime = installed_root / "usr/share/mime"
    globs = (mime / "globs2").read_text()
    assert "application/dicom:*.dcm" in globs
    assert "application/x-dicomdir:DICOMDIR" in globs
    assert (mime / "application" / "x-dicomdir.xml").is_file()
    magic = (mime / "magic").read_bytes()
    assert b"[60:application/dicom]\n>128=\x00\x04DICM" in magic
    assert all(t in mime_types for t in ("application/dicom", "application/x-dicomdir"))


def test_remove_leaves_nothing_behind(frozen_build: FrozenBuild, installed_root: Path) -> None:
    # Runs last in this module (pytest keeps file order): uninstall from the same clean root.
    command = [
        "dpkg",
        f"--root={installed_root}",
        "--force-script-chrootless",
        "--log=/dev/null",
        "--purge",
        "lightbox",
    ]
    if os.geteuid() != 0:
        command.insert(1, "--force-not-root")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (installed_root / "opt/lightbox").exists()
    assert not (installed_root / "usr/bin/lightbox").exists()
    assert not (installed_root / "usr/share/applications/lightbox.desktop").exists()
