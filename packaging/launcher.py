"""Entry script of the frozen Lightbox app (PyInstaller freezes this file into the `lightbox` executable)."""

import sys

from viewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
