"""`vigie serve`: the national service with its dashboard."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cli.common import fail


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the national service")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $VIGIE_DATA_DIR or ./vigie-data"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="service processes (one per core for ingestion at scale; default 1)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from api.app import prepare
    from api.datadir import PRIVATE_UMASK
    from api.server import serve
    from api.settings import Settings, SettingsError

    # Everything the service writes (databases, keys, caches) is its account's alone.
    os.umask(PRIVATE_UMASK)
    if args.workers < 1:
        return fail("--workers must be at least 1")
    try:
        settings = Settings.from_env(args.data_dir)
    except SettingsError as exc:
        return fail(str(exc))
    password = prepare(settings)
    if password:
        # To the terminal of whoever started the service, never to the log (which is kept).
        print(
            f"first start: log in as 'admin' with password {password} "
            "(it must be changed at the first login: POST /auth/password)",
            file=sys.stderr,
            flush=True,
        )
    serve(settings, args.host, args.port, args.workers)
    return 0
