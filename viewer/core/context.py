"""The application context: data folder, settings and store, shared by the CLI and the GUI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from viewer.core import logs
from viewer.core.paths import data_dir, ensure_data_dir
from viewer.core.settings import Settings
from viewer.core.store import StudyStore

if TYPE_CHECKING:
    from viewer.core.importer import ImportLimits


@dataclass
class AppContext:
    home: Path
    settings: Settings
    store: StudyStore

    @property
    def settings_path(self) -> Path:
        return self.home / "settings.json"

    def save_settings(self) -> None:
        self.settings.save(self.settings_path)

    def import_limits(self) -> ImportLimits:
        """The bounds of an import, from the settings as they are now: one definition for the CLI and the GUI,
        so that a file the Storage SCP would refuse as too large is refused alike whichever way it comes in."""
        from viewer.core.importer import ImportLimits  # the importer is not needed by every process

        return ImportLimits(max_object_bytes=self.settings.local.max_object_bytes or ImportLimits.max_object_bytes)

    @classmethod
    def open(cls, home: Path | None = None, *, recover: bool = True) -> AppContext:
        """Open (creating on first run) the data folder, its settings and its store."""
        # Every Lightbox process opens its context; from here on pydicom's warnings carry no patient values.
        logs.install()
        folder = ensure_data_dir(home or data_dir())
        settings_path = folder / "settings.json"
        settings = Settings.load(settings_path)
        if not settings_path.exists():
            settings.save(settings_path)
        store = StudyStore(folder / "store", max_object_bytes=settings.local.max_object_bytes or None)
        if recover:
            # Recovery runs only if no other Lightbox process has the store open (the store checks with an OS
            # lock); otherwise it is skipped and left to whichever process next opens the store alone.
            store.recover()
        return cls(home=folder, settings=settings, store=store)
