import sys

from viewer.cli import main

# Guarded: import worker processes are spawned and re-import the main module under another name.
if __name__ == "__main__":
    sys.exit(main())
