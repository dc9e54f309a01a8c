"""A scoring server on loopback for tests and benchmarks: start, wait until it answers, stop.

:func:`served` runs ``mlflow models serve`` of a model folder or ``models:/`` URI with the
venv's tools on ``PATH`` (a venv that is not activated has no ``uvicorn`` on it), in its
own process session so that :func:`stop_server` stops it and all its workers;
:func:`served_service` runs the decision service (``agents.serving.service``) the same way.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(
    model: Path | str,
    workers: int,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[int]:
    """``mlflow models serve`` of ``model`` (a folder or a ``models:/`` URI) on 127.0.0.1,
    in ``env`` (this one's, with the venv's tools on PATH, by default); yields its port
    once it answers ``/ping``; stops it and its workers."""
    port = free_port()
    if env is None:
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            wait_for_ping(port, process, log)
            yield port
        finally:
            stop_server(process)


def stop_server(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop a server started in its own session, and all its workers: TERM, then KILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)


def wait_for_ping(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the server on ``port`` answers ``GET /ping`` with 200 (at most 120 s);
    raise with the end of its ``log`` if it exits first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise RuntimeError(f"no /ping answer on port {port} in 120 s")


@dataclass
class Service:
    """A running decision service: its port and its process (the uvicorn supervisor)."""

    port: int
    process: subprocess.Popen[bytes]
    log_dir: Path


@contextmanager
def served_service(
    policy: Path | str,
    log_dir: Path,
    workers: int,
    log: Path,
    options: list[str] | None = None,
) -> Iterator[Service]:
    """The decision service (``agents.serving.service``) of the policy directory
    ``policy`` on 127.0.0.1 with ``workers`` processes, journals in ``log_dir`` and extra
    command-line ``options`` (``["--explore", "0.2"]``...); yields it once it answers
    ``/ping``; stops it (SIGTERM, then SIGKILL) if it still runs."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "agents.serving.service.launch",
        "--policy",
        str(policy),
        "--logs",
        str(log_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        *(options or []),
    ]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_ping(port, process, log)
            yield Service(port, process, Path(log_dir))
        finally:
            stop_server(process)
