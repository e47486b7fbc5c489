"""Running the service: one uvicorn process, or several forked workers on one socket.

Why not uvicorn's own `workers=`: its workers are *spawned* and rebuild the listening socket
from its file descriptor, which loses the socket's protocol number; asyncio then does not set
TCP_NODELAY on accepted connections, and every answer waits for the client's delayed ACK
(about 40 ms per request on loopback, measured: 45 ms for GET /health against 2 ms). Forked
workers inherit the socket object whole, and answer as fast as a single process.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from api.app import create_app, prepare
from api.settings import Settings

log = logging.getLogger("vigie.api")
_RESTART_PAUSE = 1.0  # seconds between restarts of a worker that keeps dying


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    if workers == 1:
        uvicorn.run(
            create_app(settings), host=host, port=port, log_level="info", server_header=False
        )
        return
    # The schema and the first admin are done here, once, before any worker starts.
    prepare(settings)
    listener = _listen(host, port)
    context = multiprocessing.get_context("fork")
    stopping = False

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(settings, listener), daemon=False)
        process.start()
        return process

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    running = [start() for _ in range(workers)]
    # On stderr like uvicorn's own "running on" line, with the port bound (`--port 0` lets the
    # system choose it).
    bound = listener.getsockname()[1]
    print(f"Vigie serving on http://{host}:{bound} with {workers} workers", file=sys.stderr)
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(running):
            if not process.is_alive() and not stopping:
                log.error("worker %s exited with %s: restarting it", process.pid, process.exitcode)
                time.sleep(_RESTART_PAUSE)
                running[index] = start()
    for process in running:
        process.terminate()  # uvicorn finishes the requests in flight, then exits
    for process in running:
        process.join(timeout=30)
    listener.close()


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(2048)
    return listener


def _worker(settings: Settings, listener: socket.socket) -> None:
    # The parent's handlers are for the parent; uvicorn installs its own for a clean stop.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="info", server_header=False)  # no version banner
    uvicorn.Server(config).run(sockets=[listener])
