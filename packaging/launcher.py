"""Entry script of the frozen Lightbox app (PyInstaller freezes this file into the `lightbox` executable).

Everything, including `lightbox FILE…` from a desktop double-click, is handled by `viewer.cli.main`.
"""

import sys

from viewer import cli

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
