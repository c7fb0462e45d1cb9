"""Entry script of the frozen Lightbox app (PyInstaller freezes this file into the `lightbox` executable).

Desktops start the app with the documents a user double-clicked (`Exec=lightbox %F`, Windows `"%1"`, macOS
open-document events through argv emulation). The CLI takes subcommands, so such paths are imported into the local
store first and then the main window opens on it.
"""

import sys
from pathlib import Path

from viewer import cli


def opened_documents(argv: list[str]) -> list[str]:
    """The arguments if they are all existing files or folders and not a subcommand; else []."""
    if not argv or any(arg.startswith("-") for arg in argv):
        return []
    cli.build_parser()  # registers the subcommands
    if argv[0] in {name for name, *_ in cli._COMMANDS}:
        return []
    return argv if all(Path(arg).exists() for arg in argv) else []


def launch(argv: list[str]) -> int:
    documents = opened_documents(argv)
    if documents:
        # A file that fails to import is reported by the import command; the window opens regardless.
        cli.main(["import", *documents])
        return cli.main([])
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
