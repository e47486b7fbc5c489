"""`vigie maturity check-framework`: is a maturity framework file usable, and if not, why."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from cli.common import fail


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("maturity", help="maturity frameworks")
    sub = parser.add_subparsers(dest="maturity_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check-framework", help="validate a framework file; report every problem and its place"
    )
    check.add_argument(
        "file", nargs="?", type=Path, metavar="FILE", help="default: the framework Vigie ships"
    )
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(run=run_check_framework)


def run_check_framework(args: argparse.Namespace) -> int:
    # Imported here: the other subcommands need not load pydantic models and the checks.
    from api.maturity.framework import DEFAULT, FrameworkError, FrameworkUnreadable, load

    path: Path = args.file or DEFAULT
    try:
        framework = load(path)
    except FrameworkError as exc:
        problems = [{"place": p.place, "line": p.line, "reason": p.reason} for p in exc.problems]
        report: dict[str, Any] = {"ok": False, "framework": None, "problems": problems}
        unreadable = isinstance(exc, FrameworkUnreadable)
        if args.format == "json":
            _write_json(report)
        elif unreadable:
            return fail(f"{path}: {exc.problems[0].reason}")
        else:
            print(f"{path}: not usable, {len(problems)} problem(s):")
            for p in exc.problems:
                print(f"  {p.place}: {p.reason}")
        # 2: nothing was checked; 1: checked and refused, so that a repository can gate on it.
        return 2 if unreadable else 1
    summary = {
        "id": framework.id,
        "version": framework.version,
        "title": framework.framework.title,
        "path": str(path),
        "domains": len(framework.domains),
        "controls": len(framework.controls),
        "digest": framework.digest,
    }
    if args.format == "json":
        _write_json({"ok": True, "framework": summary, "problems": []})
    else:
        print(
            f"{framework.id} {framework.version}: usable, {summary['domains']} domains, "
            f"{summary['controls']} controls, sha256 {framework.digest} ({path})"
        )
    return 0


def _write_json(report: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
