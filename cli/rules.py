"""`vigie rules check` and `vigie rules convert`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from cli.common import fail, rule_paths
from detection.errors import RuleError, VigieDetectionError
from detection.logsource import windows_where
from detection.sigma import Logsource, load_sigma_rules


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("rules", help="check or convert rule sets")
    sub = parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    check = sub.add_parser("check", help="load and validate rules; report every unusable one")
    check.add_argument("--sigma", type=Path, action="append", metavar="PATH")
    check.add_argument("--yara", type=Path, action="append", metavar="PATH")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(run=run_check)

    from cli import convert

    convert.add_parser(sub)


def run_check(args: argparse.Namespace) -> int:
    sigma_paths = rule_paths(args.sigma, "sigma", bool(args.yara))
    yara_paths = rule_paths(args.yara, "yara", bool(args.sigma))
    if not sigma_paths and not yara_paths:
        return fail("no rules to check (give --sigma or --yara, or fill rules/)")
    try:
        report = _check(sigma_paths, yara_paths)
    except VigieDetectionError as exc:
        return fail(str(exc))
    if args.format == "json":
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_text(report)
    errors = len(report["sigma"]["errors"]) + len(report["yara"]["errors"])
    # Non-zero when something is unusable, so that rule repositories can gate on it.
    return 1 if errors else 0


def _check(sigma_paths: list[Path], yara_paths: list[Path]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "sigma": {"rules": 0, "files": 0, "errors": []},
        "yara": {"files": 0, "rules": 0, "errors": []},
    }
    if sigma_paths:
        ruleset = load_sigma_rules(sigma_paths)
        report["sigma"] = {
            "rules": ruleset.files_usable,
            "files": ruleset.files_total,
            "detection_rules": len(ruleset.rules),
            "correlation_rules": len(ruleset.correlations),
            "errors": [_error(e) for e in ruleset.errors],
            "warnings": [
                {"path": str(rule.path), "warning": warning}
                for rule in ruleset.rules
                if (warning := logsource_warning(rule.logsource)) is not None
            ],
        }
    if yara_paths:
        from detection.yara import load_yara_rules

        yara = load_yara_rules(yara_paths)
        report["yara"] = {
            "files": yara.files_compiled,
            "rules": yara.rule_count,
            "errors": [_error(e) for e in yara.errors],
        }
    return report


def logsource_warning(logsource: Logsource) -> str | None:
    """Why a loaded Windows rule will never see an event, if it will not."""
    if logsource.product != "windows":
        return None
    if windows_where(logsource.category, logsource.service) == []:
        what = f"category {logsource.category}" if logsource.category else ""
        if logsource.service:
            what = f"{what} service {logsource.service}".strip()
        return f"log source ({what}) maps to no Windows event log Vigie reads: never evaluated"
    return None


def _error(error: RuleError) -> dict[str, Any]:
    out: dict[str, Any] = {"path": error.path, "error": error.reason}
    if error.line:
        out["line"] = error.line
    return out


def _print_text(report: dict[str, Any]) -> None:
    sigma, yara = report["sigma"], report["yara"]
    if sigma["files"]:
        print(f"Sigma: {sigma['rules']} of {sigma['files']} rule files usable")
        for e in sigma["errors"]:
            print(f"  {e['path']}: {e['error']}")
        for w in sigma.get("warnings", []):
            print(f"  warning: {w['path']}: {w['warning']}")
    if yara["files"] or yara["errors"]:
        print(f"YARA: {yara['files']} files compiled, {yara['rules']} rules")
        for e in yara["errors"]:
            where = f"{e['path']}:{e['line']}" if e.get("line") else e["path"]
            print(f"  {where}: {e['error']}")
