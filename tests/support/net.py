"""Loopback helpers for tests that start real peers: free ports, waiting for a listener, process control."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def require_tool(name: str) -> str:
    """Path of a peer program; fails (not skips) in CI, where `./dev test` installs them."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (./dev test installs it when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def running(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    port: int | None = None,
    log_path: Path | None = None,
    timeout: float = 20.0,
) -> Iterator[subprocess.Popen]:
    """Start a peer process, wait for its port, and always stop it (and its children) afterwards."""
    log_file = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if port is not None:
            try:
                wait_for_port(port, timeout)
            except TimeoutError:
                if proc.poll() is not None and log_path:
                    raise RuntimeError(
                        f"{cmd[0]} exited with {proc.returncode}: {log_path.read_text(errors='replace')[-2000:]}"
                    ) from None
                raise
        yield proc
    finally:
        stop(proc)
        if log_path:
            log_file.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)
