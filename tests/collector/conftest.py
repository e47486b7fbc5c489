"""The national service for the agent's tests: the same real service the API tests use, and a
man in the middle that forges its rule bundles."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests import clients
from tests.api.conftest import database_url, service  # noqa: F401 - fixtures, re-exported


def forging_proxy(
    real: str, key: str, forge: Callable[[dict[str, Any]], None]
) -> ThreadingHTTPServer:
    """Serves the real service's bundle changed by `forge` (the signature left as it was) and
    one version higher, whatever version the agent asks for: what a man in the middle would
    try. `key` is the agent's Authorization header."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]  # whatever the agent has: the full bundle
            envelope = clients.get(f"{real}{path}", headers={"Authorization": key}).json()
            forged = copy.deepcopy(envelope)
            forge(forged["bundle"])
            forged["bundle"]["version"] += 1
            body = json.dumps(forged).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serving_proxy(
    answers: dict[str, Callable[[], tuple[int, Any]]], real: str | None = None
) -> ThreadingHTTPServer:
    """A man in the middle that answers the paths of `answers` itself ((status, JSON) from the
    callable: e.g. a genuinely signed bundle of another establishment, or an older one) and
    relays any other request to `real`, headers and body as they came."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path in answers:
                status, content = answers[path]()
                data, kind = json.dumps(content).encode(), "application/json"
            elif real is not None:
                with clients.client() as relay:
                    relayed = relay.request(
                        self.command,
                        f"{real}{self.path}",
                        content=body,
                        headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    )
                status, data = relayed.status_code, relayed.content
                kind = relayed.headers.get("content-type", "application/json")
            else:
                status, data, kind = 404, b"{}", "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer  # noqa: N815 - http.server's names

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
