"""A real film printer for tests: DCMTK `dcmprscp` on loopback with a config written by the test.

`dcmprscp` stores each received film as a Stored Print object (SP_*.dcm) plus one Hardcopy Grayscale
image (HG_*.dcm) per image box N-SET in its database folder, and logs every DIMSE message with `-d`.
It implements Basic Grayscale Print Management (+ Presentation LUT) only: it rejects the Color meta class
and the Annotation Box class at association time, which is exactly how a grayscale-only imager behaves.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from tests.support.net import free_port, require_tool, running

SOURCE_CONFIG = Path("/etc/dcmtk/dcmpstat.cfg")

# Extra printer sections appended to the copied config; keys as in /etc/dcmtk/printers.cfg.
RESTRICTED_FILM = """
[SMALLFILM]
Aetitle = SMALLFILM
Description = grayscale printer that only takes 8x10 film, 8 bit, 1x1 and 2x2
Hostname = localhost
Port = {port}
Type = LOCALPRINTER
DisableNewVRs = false
DisplayFormat = 1,1\\2,2
FilmSizeID = 8INX10IN
MediumType = PAPER\\BLUE FILM
FilmDestination = PROCESSOR\\MAGAZINE
MagnificationType = REPLICATE\\BILINEAR\\CUBIC\\NONE
MaxDensity = 320
MinDensity = 20
ImplicitOnly = false
MaxPDU = 32768
Supports12Bit = false
SupportsPresentationLUT = false
"""


@dataclass
class PrintServer:
    """A running dcmprscp: where to reach it and where it keeps what it received."""

    ae_title: str
    port: int
    database: Path
    log_path: Path

    def stored_prints(self) -> list[Dataset]:
        return [pydicom.dcmread(p) for p in sorted(self.database.glob("SP_*.dcm"), key=lambda p: p.stat().st_mtime)]

    def hardcopy_images(self) -> list[Dataset]:
        return [pydicom.dcmread(p) for p in sorted(self.database.glob("HG_*.dcm"), key=lambda p: p.stat().st_mtime)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def clear(self) -> None:
        """Forget earlier jobs so a test sees only its own films."""
        for path in list(self.database.glob("SP_*.dcm")) + list(self.database.glob("HG_*.dcm")):
            path.unlink()

    def dimse_messages(self, message_type: str) -> int:
        return len(re.findall(rf"Message Type\s*:\s*{re.escape(message_type)}\b", self.log()))


def write_config(folder: Path, printers: dict[str, int]) -> Path:
    """Copy the stock dcmpstat.cfg, pointing its database/log folders into `folder` and each named
    printer section (IHEFULL, IHERESTRICTED or our SMALLFILM) at its port."""
    text = SOURCE_CONFIG.read_text()
    database = folder / "database"
    database.mkdir(parents=True, exist_ok=True)
    (folder / "log").mkdir(exist_ok=True)
    text = re.sub(r"(?m)^Directory\s*=\s*database\s*$", f"Directory = {database}", text)
    text = re.sub(r"(?m)^LogDirectory\s*=.*$", f"LogDirectory = {folder / 'log'}", text)
    text = re.sub(r"(?m)^Directory\s*=\s*spool\s*$", f"Directory = {folder / 'spool'}", text)
    for section, port in printers.items():
        if section == "SMALLFILM":
            continue
        pattern = rf"(?ms)(^\[{section}\]\s*$.*?^Port\s*=\s*)\d+"
        text, count = re.subn(pattern, rf"\g<1>{port}", text, count=1)
        if count != 1:
            raise ValueError(f"printer section {section} not found in {SOURCE_CONFIG}")
    if "SMALLFILM" in printers:
        # Printer sections must sit inside [[COMMUNICATION]], i.e. before [[USERS]].
        text = text.replace("[[USERS]]", RESTRICTED_FILM.format(port=printers["SMALLFILM"]) + "\n[[USERS]]", 1)
    path = folder / "dcmpstat.cfg"
    path.write_text(text)
    return path


@contextlib.contextmanager
def print_server(folder: Path, printer: str = "IHEFULL") -> Iterator[PrintServer]:
    """Start `dcmprscp -d -c <copied config> -p <printer>` on a free port; stopped on exit."""
    exe = require_tool("dcmprscp")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, {printer: port})
    log_path = folder / f"dcmprscp-{printer}.log"
    server = PrintServer(printer, port, folder / "database", log_path)
    with running([exe, "-d", "-c", str(config), "-p", printer], cwd=folder, port=port, log_path=log_path):
        yield server
