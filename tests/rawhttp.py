"""A bare HTTP/1.1 client on a socket, for what httpx will not send: a Content-Length that
lies, a chunked body that never ends, a body that trickles in. It stops sending as soon as
the service answers, and returns that answer's status line and head."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable
from urllib.parse import urlsplit


def send(
    url: str,
    path: str,
    chunks: Iterable[bytes],
    *,
    headers: dict[str, str] | None = None,
    chunked: bool = True,
    pause: float = 0.0,
    timeout: float = 60.0,
) -> tuple[int, bytes, int]:
    """POST `chunks` to `path`; returns (status, answer head and body, bytes sent)."""
    where = urlsplit(url)
    head = {"Host": where.netloc, "Content-Type": "application/json", **(headers or {})}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    sent = 0
    with socket.create_connection((where.hostname, where.port), timeout=timeout) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode())
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # the service answered: stop sending
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent += len(chunk)
                if pause:
                    time.sleep(pause)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service closed its side after answering: read what it said
        answer = _read_answer(sock, timeout)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, sent


def _read_answer(sock: socket.socket, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                break
    return data
