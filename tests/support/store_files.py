"""What a store holds on disk, for tests that check nothing is stored twice or left orphaned."""

from __future__ import annotations

from pathlib import Path

from viewer.core.store import StudyStore


def stored_files(store: StudyStore) -> set[Path]:
    """The content-addressed files, without temp files and the spare files made ahead."""
    scratch = (store.tmp_dir, store.spare_dir)
    return {p for p in store.files_dir.rglob("*") if p.is_file() and not any(d in p.parents for d in scratch)}
