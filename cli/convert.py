"""`vigie rules convert`: Sigma rules as Elasticsearch or SQLite queries.

Text output: for each rule, a `-- <id> <title>` comment line, then its query (or a
`-- not converted: <reason>` line). JSON output: a list of
`{"rule_id", "title", "path", "query", "error"}` objects, rule files that do not load included
(with a null `rule_id`). Exit status 0 when every rule converted, 1 when some did not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from cli.common import fail
from detection.errors import VigieDetectionError
from detection.sigma import load_sigma_rules
from detection.sigma.convert import ConversionResult, to_elasticsearch, to_sqlite


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "convert", help="convert Sigma rules to Elasticsearch or SQLite queries"
    )
    parser.add_argument("--target", choices=("elasticsearch", "sqlite"), required=True)
    parser.add_argument("--sigma", type=Path, action="append", metavar="PATH", required=True)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--layout",
        choices=("vigie", "ecs_windows"),
        default="vigie",
        help="Elasticsearch field layout: Vigie's stored events (default) or Winlogbeat's",
    )
    parser.add_argument("--table", default="logs", help="SQLite table name (default: logs)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        ruleset = load_sigma_rules(args.sigma)
    except VigieDetectionError as exc:
        return fail(str(exc))
    if args.target == "sqlite":
        results = to_sqlite(ruleset.rules, table=args.table)
    else:
        results = to_elasticsearch(ruleset.rules, layout=args.layout)
    load_errors = [
        {"rule_id": None, "title": None, "path": e.path, "query": None, "error": e.reason}
        for e in ruleset.errors
    ]
    if args.format == "json":
        report = [_as_json(r) for r in results] + load_errors
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for result in results:
            print(f"-- {result.rule_id} {result.title}")
            print(result.query if result.ok else f"-- not converted: {result.error}")
        for error in load_errors:
            print(f"-- {error['path']}: not loaded: {error['error']}")
    if ruleset.correlations:
        print(
            f"vigie: warning: {len(ruleset.correlations)} correlation rule(s) not converted",
            file=sys.stderr,
        )
    return 0 if not load_errors and all(r.ok for r in results) else 1


def _as_json(result: ConversionResult) -> dict[str, Any]:
    return {
        "rule_id": result.rule_id,
        "title": result.title,
        "path": str(result.path) if result.path else None,
        "query": result.query,
        "error": result.error,
    }
