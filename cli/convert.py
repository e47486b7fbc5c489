"""`vigie rules convert`: Sigma rules as Elasticsearch or SQLite queries."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.common import fail


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "convert", help="convert Sigma rules to Elasticsearch or SQLite queries"
    )
    parser.add_argument("--target", choices=("elasticsearch", "sqlite"), required=True)
    parser.add_argument("--sigma", type=Path, action="append", metavar="PATH", required=True)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return fail("conversion is not available yet", 2)
