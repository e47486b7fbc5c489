"""HTTP clients for tests, sharing one TLS context.

httpx builds a TLS context for every client and transport, loading the system's CA bundle each
time: about 70 ms of CPU, for clients that only ever speak plain HTTP to a loopback server. The
suite opens thousands of them, so they share this one, built once per process.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

TLS = ssl.create_default_context()


def client(base_url: str = "", **options: Any) -> httpx.Client:
    options.setdefault("timeout", 10)
    return httpx.Client(base_url=base_url, verify=TLS, **options)


def transport(**options: Any) -> httpx.HTTPTransport:
    return httpx.HTTPTransport(verify=TLS, **options)


def get(url: str, **options: Any) -> httpx.Response:
    with client() as c:
        return c.get(url, **options)


def post(url: str, **options: Any) -> httpx.Response:
    with client() as c:
        return c.post(url, **options)
