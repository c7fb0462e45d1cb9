"""Build the double-clickable Lightbox distribution (`./dev dist`).

Steps: PyInstaller one-folder app (packaging/lightbox.spec) → `lightbox-<version>-linux-<arch>.tar.gz` →
`lightbox_<version>_<debarch>.deb` (built with `dpkg-deb --build`, installing into /opt/lightbox with a
/usr/bin/lightbox link, a .desktop file, hicolor icons and the DICOM MIME types). Prints the bundle sizes and the
frozen app's cold start time at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
RESOURCES = ROOT / "resources"
SPEC = PACKAGING / "lightbox.spec"
APP_NAME = "lightbox"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)

# Plugins Qt only loads when their environment exists (Wayland session, GTK theme, network manager...): their
# libraries are Recommends, not Depends, so a plain X11 desktop or a headless server installs the .deb as is.
OPTIONAL_ELF_PARTS = (
    "plugins/platformthemes/",
    "plugins/wayland-",
    "plugins/platforms/libqwayland",
    "plugins/networkinformation/",
    "plugins/platforminputcontexts/",
    "plugins/tls/",
    "plugins/xcbglintegrations/",
    "plugins/generic/",
)

POSTINST = """#!/bin/sh
# Refresh the desktop's caches so the menu entry, the icon and "Open with Lightbox" for DICOM files appear at once.
# DPKG_ROOT is set when installing into another root (dpkg --root); empty on a normal install.
set -e
case "$1" in
    configure|abort-upgrade|abort-remove|abort-deconfigure|remove|purge)
        if command -v update-desktop-database >/dev/null 2>&1; then
            update-desktop-database -q "${DPKG_ROOT:-}/usr/share/applications" || true
        fi
        if command -v update-mime-database >/dev/null 2>&1; then
            update-mime-database "${DPKG_ROOT:-}/usr/share/mime" || true
        fi
        if command -v gtk-update-icon-cache >/dev/null 2>&1; then
            gtk-update-icon-cache -q -t -f "${DPKG_ROOT:-}/usr/share/icons/hicolor" || true
        fi
        ;;
esac
exit 0
"""


@dataclass
class BuildResult:
    version: str
    app_dir: Path
    tarball: Path | None
    deb: Path | None


def read_version() -> str:
    text = (ROOT / "viewer" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if match is None:
        raise SystemExit("viewer/__init__.py has no __version__")
    return match.group(1)


_STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[dist {time.perf_counter() - _STARTED:5.0f} s] {message}", flush=True)


def run_pyinstaller(out_dir: Path, work_dir: Path, clean: bool) -> Path:
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level=WARN",
        f"--distpath={out_dir}",
        f"--workpath={work_dir}",
    ]
    if clean:
        command.append("--clean")
    say("PyInstaller: " + " ".join(command[3:]) + f" {SPEC.relative_to(ROOT)}")
    subprocess.run([*command, str(SPEC)], check=True, cwd=ROOT)
    app_dir = out_dir / APP_NAME
    if not (app_dir / APP_NAME).is_file():
        raise SystemExit(f"PyInstaller produced no {app_dir / APP_NAME}")
    return app_dir


def strip_debug_info(app_dir: Path) -> int:
    """Remove DWARF debug sections (libpython, the pylibjpeg codecs carry ~27 MB); returns the bytes saved.

    Only debug sections go, never symbols; libraries in auditwheel's `*.libs` folders are left alone because
    they were rewritten by patchelf and are already stripped.
    """
    if shutil.which("strip") is None or shutil.which("objdump") is None:
        say("strip/objdump missing: debug info left in the bundle")
        return 0
    saved = 0
    for path in sorted(app_dir.rglob("*")):
        if path.is_symlink() or not path.is_file() or any(part.endswith(".libs") for part in path.parts):
            continue
        if not _is_elf(path):
            continue
        headers = subprocess.run(["objdump", "-h", str(path)], capture_output=True, text=True).stdout
        if ".debug_info" not in headers:
            continue
        before = path.stat().st_size
        subprocess.run(["strip", "--strip-debug", str(path)], check=True)
        saved += before - path.stat().st_size
    say(f"stripped debug info: {mib(saved)} saved")
    return saved


def machine_arch() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


def debian_arch() -> str:
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine_arch(), machine_arch())


def make_tarball(app_dir: Path, out_dir: Path, version: str) -> Path:
    top = f"{APP_NAME}-{version}"
    tarball = out_dir / f"{top}-linux-{machine_arch()}.tar.gz"
    say(f"tarball {tarball.name}")
    with tarfile.open(tarball, "w:gz", compresslevel=6) as archive:
        archive.add(app_dir, arcname=top)
        # The desktop integration files, for users who unpack into their home folder and want a menu entry.
        archive.add(RESOURCES / "lightbox.desktop", arcname=f"{top}/share/applications/lightbox.desktop")
        archive.add(RESOURCES / "lightbox-dicom.xml", arcname=f"{top}/share/mime/packages/lightbox-dicom.xml")
        archive.add(RESOURCES / "icons" / "lightbox.svg", arcname=f"{top}/share/icons/lightbox.svg")
    return tarball


# --- .deb ---------------------------------------------------------------------------------------------------------


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def _needed_sonames(path: Path) -> set[str]:
    result = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True)
    return set(re.findall(r"^\s*NEEDED\s+(\S+)", result.stdout, flags=re.MULTILINE))


def _system_library_paths() -> dict[str, list[str]]:
    output = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    paths: dict[str, list[str]] = {}
    for soname, flags, path in re.findall(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", output, re.MULTILINE):
        # Skip 32-bit multilib copies ("libc6" without an ABI tag such as x86-64 or AArch64).
        if "," in flags:
            paths.setdefault(soname, []).append(path)
    return paths


def _owning_package(library_path: str) -> str | None:
    candidates = [library_path, os.path.realpath(library_path)]
    # Debian's merged /usr: dpkg may know the file under /lib or /usr/lib.
    candidates += [p.removeprefix("/usr") for p in candidates if p.startswith("/usr/lib")]
    candidates += ["/usr" + p for p in candidates if p.startswith("/lib")]
    for candidate in dict.fromkeys(candidates):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout:
            return result.stdout.split(":", 1)[0].strip()
    return None


def system_dependencies(app_dir: Path) -> tuple[list[str], list[str]]:
    """Debian packages providing the shared libraries the bundle needs but does not carry: (depends, recommends)."""
    if shutil.which("objdump") is None or shutil.which("dpkg") is None:
        say("objdump or dpkg missing: the .deb declares only libc6 as dependency")
        return ["libc6"], []
    elfs = [p for p in app_dir.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]
    bundled = {p.name for p in app_dir.rglob("*")}
    needs = {elf: _needed_sonames(elf) for elf in elfs}
    optional = {elf for elf in elfs if any(part in elf.relative_to(app_dir).as_posix() for part in OPTIONAL_ELF_PARTS)}
    # A bundled library needed only by optional plugins (libQt6WaylandClient by the Wayland plugin) is optional too.
    changed = True
    while changed:
        changed = False
        for elf in elfs:
            needers = [other for other in elfs if elf.name in needs[other]]
            if elf not in optional and needers and all(other in optional for other in needers):
                optional.add(elf)
                changed = True
    core_needs: set[str] = set()
    optional_needs: set[str] = set()
    for elf in elfs:
        (optional_needs if elf in optional else core_needs).update(needs[elf] - bundled)
    system_paths = _system_library_paths()

    def packages(sonames: set[str]) -> set[str]:
        found = set()
        for soname in sorted(sonames):
            for path in system_paths.get(soname, []):
                package = _owning_package(path)
                if package:
                    found.add(package)
                    break
        return found

    depends = packages(core_needs)
    recommends = packages(optional_needs) - depends
    return sorted(depends), sorted(recommends)


def _folder_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def make_deb(app_dir: Path, out_dir: Path, work_dir: Path, version: str, compression: str) -> Path:
    arch = debian_arch()
    deb = out_dir / f"{APP_NAME}_{version}_{arch}.deb"
    stage = work_dir / "deb-root"
    if stage.exists():
        shutil.rmtree(stage)
    say(f"staging {deb.name}")
    opt = stage / "opt" / APP_NAME
    shutil.copytree(app_dir, opt, symlinks=True)
    usr_bin = stage / "usr" / "bin"
    usr_bin.mkdir(parents=True)
    # Relative so the link also works inside an alternative root (dpkg --root, chroots, image builders).
    (usr_bin / APP_NAME).symlink_to(Path("..", "..", "opt", APP_NAME, APP_NAME))
    share = stage / "usr" / "share"
    (share / "applications").mkdir(parents=True)
    shutil.copy2(RESOURCES / "lightbox.desktop", share / "applications" / "lightbox.desktop")
    (share / "mime" / "packages").mkdir(parents=True)
    shutil.copy2(RESOURCES / "lightbox-dicom.xml", share / "mime" / "packages" / "lightbox-dicom.xml")
    hicolor = share / "icons" / "hicolor"
    for size in ICON_SIZES:
        icon_dir = hicolor / f"{size}x{size}" / "apps"
        icon_dir.mkdir(parents=True)
        shutil.copy2(RESOURCES / "icons" / f"lightbox-{size}.png", icon_dir / "lightbox.png")
    (hicolor / "scalable" / "apps").mkdir(parents=True)
    shutil.copy2(RESOURCES / "icons" / "lightbox.svg", hicolor / "scalable" / "apps" / "lightbox.svg")
    doc = share / "doc" / APP_NAME
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: Lightbox\n\nFiles: *\nCopyright: Lightbox developers\nLicense: MIT\n"
        " Bundled third-party libraries (Qt, Python, pydicom, pynetdicom, GDCM, OpenJPEG, libjpeg) keep their own\n"
        " licenses; see /opt/lightbox/_internal.\n",
        encoding="utf-8",
    )

    depends, recommends = system_dependencies(app_dir)
    installed_kib = (_folder_size(stage) + 1023) // 1024
    control = stage / "DEBIAN"
    control.mkdir()
    fields = {
        "Package": APP_NAME,
        "Version": version,
        "Architecture": arch,
        "Maintainer": "Lightbox developers <lightbox@localhost>",
        "Installed-Size": str(installed_kib),
        "Depends": ", ".join(depends),
        "Recommends": ", ".join(recommends),
        "Section": "science",
        "Priority": "optional",
        "Homepage": "https://localhost/lightbox",
        "Description": "DICOM viewer workstation for radiologists\n"
        " Lightbox keeps a local study database, imports files, folders, CDs (DICOMDIR) and ZIP archives,\n"
        " queries and retrieves from PACS, views images with presentation states, shows structured reports\n"
        " and PDFs, and prints DICOM film. Self-contained build with its own Python and Qt in /opt/lightbox.",
    }
    (control / "control").write_text(
        "".join(f"{key}: {value}\n" for key, value in fields.items() if value), encoding="utf-8"
    )
    for script in ("postinst", "postrm"):
        path = control / script
        path.write_text(POSTINST, encoding="utf-8")
        path.chmod(0o755)
    for path in stage.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)

    say(f"dpkg-deb --build ({compression})")
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(stage), str(deb)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(stage)
    return deb


# --- figures ------------------------------------------------------------------------------------------------------


def evict_from_page_cache(folder: Path) -> None:
    """Drop the bundle's files from the page cache (no root needed, other processes unaffected)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def time_version(binary: Path) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.perf_counter()
    subprocess.run([str(binary), "--version"], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def start_times(app_dir: Path, warm_runs: int = 3) -> tuple[float, float]:
    binary = app_dir / APP_NAME
    evict_from_page_cache(app_dir)
    cold = time_version(binary)
    warm = min(time_version(binary) for _ in range(warm_runs))
    return cold, warm


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def build(
    out_dir: Path, work_dir: Path, *, tarball: bool = True, deb: bool = True, compression: str = "xz", clean=False
) -> BuildResult:
    version = read_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    app_dir = run_pyinstaller(out_dir, work_dir, clean)
    strip_debug_info(app_dir)
    tar_path = make_tarball(app_dir, out_dir, version) if tarball else None
    deb_path = None
    if deb:
        if shutil.which("dpkg-deb") is None:
            say("dpkg-deb not found: skipping the .deb")
        else:
            deb_path = make_deb(app_dir, out_dir, work_dir, version, compression)
    return BuildResult(version, app_dir, tar_path, deb_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--work", type=Path, default=PACKAGING / "build", help="PyInstaller work folder")
    parser.add_argument("--clean", action="store_true", help="ignore PyInstaller's cache")
    parser.add_argument("--no-tar", action="store_true")
    parser.add_argument("--no-deb", action="store_true")
    parser.add_argument("--deb-compression", default="xz", choices=["xz", "gzip", "zstd", "none"], help="(default: xz)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = build(
        args.out.resolve(),
        args.work.resolve(),
        tarball=not args.no_tar,
        deb=not args.no_deb,
        compression=args.deb_compression,
        clean=args.clean,
    )
    build_s = time.perf_counter() - started
    cold, warm = start_times(result.app_dir)
    print()
    print(f"Lightbox {result.version} built in {build_s:.0f} s")
    print(f"  app folder  {result.app_dir}  {mib(_folder_size(result.app_dir))}")
    for artifact in (result.tarball, result.deb):
        if artifact is not None:
            print(f"  {artifact.suffix[1:]:<10}  {artifact}  {mib(artifact.stat().st_size)}")
    print(f"  cold start (lightbox --version, bundle evicted from page cache): {cold:.2f} s")
    print(f"  warm start (best of 3): {warm:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
