"""The `lightbox` command: the GUI by default, plus subcommands for scripting and headless use."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from viewer import APP_NAME, __version__
from viewer.commands import COMMANDS
from viewer.core import logs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightbox", description=f"{APP_NAME} DICOM workstation")
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    parser.add_argument("--home", type=Path, help="data folder (default: $LIGHTBOX_HOME or the user data folder)")
    parser.add_argument("--demo-if-empty", action="store_true", help="load the demo study when the store is empty")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command")
    for name, help_text, add_arguments, run in COMMANDS:
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def opened_documents(argv: Sequence[str]) -> list[str]:
    """The arguments when they are all existing files or folders and no subcommand or option; else [].

    Desktops start the app with the documents a user double-clicked (`Exec=lightbox %F`, Windows `"%1"`,
    macOS open-document events), so `lightbox FILE…` imports them and then opens the window.
    """
    if not argv or any(arg.startswith("-") for arg in argv):
        return []
    if argv[0] in {name for name, *_ in COMMANDS}:
        return []
    return list(argv) if all(Path(arg).exists() for arg in argv) else []


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    documents = opened_documents(argv)
    if documents:
        # A file that fails to import is reported by the import command; the window opens regardless.
        main(["import", *documents])
        argv = []
    parser = build_parser()
    args = parser.parse_args(argv)
    # Patient values quoted by pydicom's warnings are redacted before any handler sees them.
    logs.configure(verbose=args.verbose)
    if getattr(args, "run", None) is not None:
        return int(args.run(args))
    from viewer.ui.app import run_gui

    return run_gui(home=args.home, demo_if_empty=args.demo_if_empty)


if __name__ == "__main__":
    sys.exit(main())
