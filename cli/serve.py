"""`vigie serve`: the national service with its dashboard."""

from __future__ import annotations

import argparse
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(args.data_dir)
    except SettingsError as exc:
        return fail(str(exc))
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0
