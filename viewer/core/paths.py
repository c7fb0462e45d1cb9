"""Where Lightbox keeps its data: one folder holding the database, the file store and settings."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data folder: ``$LIGHTBOX_HOME`` if set, else the XDG data folder (``~/.local/share/Lightbox``)."""
    override = os.environ.get("LIGHTBOX_HOME")
    if override:
        return Path(override).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "Lightbox"


def ensure_data_dir(path: Path | None = None) -> Path:
    folder = path or data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
