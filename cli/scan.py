"""`vigie scan`: offline hunt with Sigma and YARA rules over files and folders."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cli import output, progress
from cli.common import fail, rule_paths
from detection.errors import VigieDetectionError
from detection.hunt import Hunt, HuntStats

if TYPE_CHECKING:
    from detection.sigma import SigmaEngine


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "scan", help="hunt with Sigma and YARA rules over files and folders"
    )
    parser.add_argument(
        "--sigma",
        type=Path,
        action="append",
        metavar="PATH",
        help="Sigma rule file or folder (repeatable)",
    )
    parser.add_argument(
        "--yara",
        type=Path,
        action="append",
        metavar="PATH",
        help="YARA rule file or folder (repeatable)",
    )
    parser.add_argument("--format", choices=output.FORMATS, default="table")
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write detections here instead of stdout"
    )
    parser.add_argument("--stats", action="store_true", help="print a summary to stderr")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes to use (default: every core)"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress line (it is shown only when stderr is a terminal)",
    )
    parser.add_argument(
        "--yara-engine",
        choices=("auto", "yara-x", "yara-python"),
        default="auto",
        help="YARA engine; auto: yara-python for small inputs (it starts faster), yara-x for "
        "large ones (it scans faster); both find the same matches",
    )
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    inputs = [p for p in args.inputs if p.exists()]
    for missing in sorted(set(args.inputs) - set(inputs)):
        print(f"vigie: warning: no such input: {missing}", file=sys.stderr)
    if not inputs:
        return fail("none of the inputs exists")
    sigma_paths = rule_paths(args.sigma, "sigma", bool(args.yara))
    yara_paths = rule_paths(args.yara, "yara", bool(args.sigma))
    try:
        engine = _sigma_engine(sigma_paths)
        scanner = _yara_scanner(yara_paths, inputs, args.yara_engine, args.workers)
    except VigieDetectionError as exc:
        return fail(str(exc))
    if engine is None and scanner is None:
        return fail("no usable rule (give --sigma or --yara, or fill rules/)")

    hunt = Hunt(engine, scanner, workers=args.workers)
    with _progress(hunt, args), _open_output(args.output) as out:
        try:
            found = output.write(args.format, hunt.run(inputs), out)
        except VigieDetectionError as exc:
            return fail(str(exc))
    if args.stats:
        _print_stats(hunt.stats, found, scanner)
    if hunt.stats.events == 0 and hunt.stats.read.files_failed and not scanner:
        return fail("no input could be read", 1)
    return 0


def _progress(hunt: Hunt, args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    if args.no_progress or not progress.wanted(sys.stderr):
        return contextlib.nullcontext()
    # Detections shown on the same terminal go above the progress line, not through it.
    to_terminal = args.output is None and progress.wanted(sys.stdout)
    return progress.ScanProgress(hunt, sys.stderr, redirect_stdout=to_terminal)


def _sigma_engine(paths: list[Path]) -> SigmaEngine | None:
    if not paths:
        return None
    # Here, not at the top: pySigma takes a quarter of a second to import, which a YARA-only
    # scan need not pay.
    from detection.sigma import SigmaEngine, load_sigma_rules

    ruleset = load_sigma_rules(paths, cache_dir=_cache_dir() / "sigma")
    if ruleset.errors:
        print(
            f"vigie: warning: {len(ruleset.errors)} Sigma rule(s) unusable, skipped "
            "(see `vigie rules check`)",
            file=sys.stderr,
        )
    if not ruleset.rules:
        return None
    return SigmaEngine(ruleset)


def _yara_scanner(
    paths: list[Path], inputs: list[Path], engine: str, workers: int | None
) -> Any | None:
    if not paths:
        return None
    from detection.yara import YaraScanner, load_yara_rules
    from detection.yara.choice import engine_for_inputs
    from detection.yara.load import EngineChoice

    choice: EngineChoice
    if engine == "auto":
        choice = engine_for_inputs(inputs)
    else:
        # yara-x, unless it refuses a rule file that yara-python takes ("auto" in the loader).
        choice = "yara-python" if engine == "yara-python" else "auto"
    ruleset = load_yara_rules(paths, cache_dir=_cache_dir() / "yara", engine=choice)
    if ruleset.errors:
        print(
            f"vigie: warning: {len(ruleset.errors)} YARA rule file(s) do not compile, skipped "
            "(see `vigie rules check`)",
            file=sys.stderr,
        )
    if not ruleset.rule_count:
        return None
    return YaraScanner(ruleset, workers=workers)


def _cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigie"


@contextlib.contextmanager
def _open_output(path: Path | None) -> Any:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as fh:
        yield fh


def _print_stats(stats: HuntStats, found: int, scanner: Any | None) -> None:
    err: TextIO = sys.stderr
    read = stats.read
    mb = stats.bytes / 2**20
    print("--- vigie scan statistics ---", file=err)
    print(f"files read: {read.files_read}, unreadable: {read.files_failed}", file=err)
    print(f"events read: {stats.events}, records skipped: {read.records_skipped}", file=err)
    print(
        f"time: {stats.seconds:.2f} s, {stats.events_per_second:,.0f} events/s, "
        f"{mb / stats.seconds if stats.seconds else 0:.1f} MB/s of logs",
        file=err,
    )
    if stats.events:
        print(f"rules evaluated per event: {stats.rules_evaluated / stats.events:.1f}", file=err)
    if scanner is not None:
        ys = scanner.stats
        print(
            f"yara: {ys.files_scanned} files, {ys.bytes_scanned / 2**20:.1f} MB scanned, "
            f"{ys.files_skipped} skipped",
            file=err,
        )
        for reason in ys.skipped[:20]:
            print(f"yara skipped: {reason}", file=err)
    print(f"detections: {found}", file=err)
    ranked = stats.hits.most_common()
    for rule_id, hits in ranked[:30]:
        print(f"  {hits:8d}  {stats.titles.get(rule_id, '')[:70]}  ({rule_id})", file=err)
    if len(ranked) > 30:
        print(f"  ... and {len(ranked) - 30} more rules with hits", file=err)
    for error in read.errors[:20]:
        print(f"skipped: {error}", file=err)
    if tracemalloc.is_tracing():
        print(f"peak traced memory: {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MB", file=err)
