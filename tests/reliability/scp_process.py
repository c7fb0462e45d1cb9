"""Run the application's Storage SCP on a data folder until killed (the fault tests kill it mid-receive).

Usage: python -m tests.reliability.scp_process HOME PORT
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from viewer.core.context import AppContext
from viewer.net.scp import StorageServer


def main() -> None:
    home, port = Path(sys.argv[1]), int(sys.argv[2])
    ctx = AppContext.open(home)
    ctx.settings.local.port = port
    ctx.settings.local.bind_address = "127.0.0.1"
    server = StorageServer(ctx.store, ctx.settings.local)
    server.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
