"""`vigie serve`: the national service with its dashboard."""

from __future__ import annotations

import argparse
import os
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
    import uvicorn

    from api.app import create_app, prepare
    from api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(args.data_dir)
    except SettingsError as exc:
        return fail(str(exc))
    if args.workers < 1:
        return fail("--workers must be at least 1")
    if args.workers == 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
        return 0
    # Several processes: the schema and the first admin are done here, once; each worker
    # builds its own application from the environment (the scheduler's database lock keeps
    # the scheduled jobs to one of them at a time).
    prepare(settings)
    os.environ["VIGIE_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level="info",
    )
    return 0
