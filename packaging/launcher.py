"""Entry script of the frozen Lightbox app (PyInstaller freezes this file into the `lightbox` executable).

Everything, including `lightbox FILE…` from a desktop double-click, is handled by `viewer.cli.main`.
"""

import multiprocessing
import sys

from viewer import cli

if __name__ == "__main__":
    multiprocessing.freeze_support()  # large imports prepare files in spawned worker processes
    sys.exit(cli.main(sys.argv[1:]))
