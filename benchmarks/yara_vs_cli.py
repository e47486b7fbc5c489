"""YARA: Vigie's scanner against Debian's `yara -p 2`, on the same files with the same rules.

    python benchmarks/yara_vs_cli.py [--runs 5] [--write]

Rules: the signature-base files of ../shared/corpora/yara that compile both in Vigie and in
Debian's yara (`yarac`, each file in its own namespace, externals declared empty). Data: the
regular files of /usr/bin up to 64 MiB (Vigie's default size limit) and the EVTX and pcap
corpora, copied to a tmpfs folder so that both tools read from memory, not from a disk that other
processes share. Each run measures, for each tool in turn (interleaved, so that a noisy moment
hurts all of them): wall time of the whole command (start, rule loading, scan, exit), CPU time,
and peak memory (PSS summed over the process tree, sampled every 20 ms: Vigie's forked workers
share pages with their parent, RSS would count them twice). Medians over the runs.

Peers: `yara -C -p 2` on a rule file compiled beforehand by `yarac` (its fastest start); Vigie
with its default engine choice (yara-x, worker processes); Vigie forced to yara-python (threads);
and the `vigie scan --yara ... --format jsonl` command itself (its engine chosen by the size of
the work, its cache warm).
With `--write`, the YARA section of benchmarks/RESULTS.md is replaced by the results.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RULES = REPO.parent / "shared" / "corpora" / "yara" / "signature-base"
CORPORA_DATA = [REPO.parent / "shared" / "corpora" / d for d in ("evtx", "pcap")]
DATA_DIR = Path("/dev/shm/vigie-yara-bench")
MAX_SIZE = 64 * 2**20
EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")
SECTION = "## YARA"
SCAN = "vigie scan --yara (whole command)"


def build_dataset(dest: Path) -> list[Path]:
    """Copy the data set into `dest` (once) and return its files in a stable order."""
    if not dest.exists():
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "usr-bin").mkdir(parents=True)
        for src in sorted(Path("/usr/bin").iterdir()):
            if src.is_file() and not src.is_symlink() and src.stat().st_size <= MAX_SIZE:
                shutil.copyfile(src, staging / "usr-bin" / src.name)
        for corpus in CORPORA_DATA:
            shutil.copytree(corpus, staging / corpus.name)
        staging.rename(dest)
    return sorted(p for p in dest.rglob("*") if p.is_file())


def rules_in_both(workdir: Path) -> tuple[list[Path], list[str]]:
    """Rule files that Vigie and Debian's yarac both compile; the reasons for the others."""
    from detection.yara import iter_rule_files, load_yara_rules

    candidates = list(iter_rule_files([RULES]))
    vigie = load_yara_rules(candidates, engine="yara-python")
    ok = set(vigie.paths)
    dropped = [f"{e.path}: Vigie: {e.reason}" for e in vigie.errors]
    defines = [arg for name in EXTERNALS for arg in ("-d", f"{name}=")]
    for path in candidates:
        if path not in ok:
            continue
        out = subprocess.run(
            ["yarac", "-w", *defines, str(path), str(workdir / "one.yarc")],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            ok.discard(path)
            dropped.append(f"{path}: yarac: {out.stderr.strip().splitlines()[0]}")
    return [p for p in candidates if p in ok], dropped


def compile_for_cli(rules: list[Path], out: Path) -> None:
    defines = [arg for name in EXTERNALS for arg in ("-d", f"{name}=")]
    sources = [f"r{i}:{path}" for i, path in enumerate(rules)]
    subprocess.run(["yarac", "-w", *defines, *sources, str(out)], check=True)


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the process ended meanwhile
                todo.extend(int(c) for c in task.read_text().split())
    return pids


def _pss_kb(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float | str]:
    """Run `cmd`; its wall time, CPU time (with its children) and peak PSS of its tree."""
    peak = 0
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _pss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = os.times()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    after = os.times()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.strip()[:500]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {"wall": wall, "cpu": cpu, "peak_mb": peak / 1024, "stdout": out}


def child(args: argparse.Namespace) -> None:
    """One Vigie run, in its own process like the CLI: load (cached) rules, scan, report."""
    from detection.yara import YaraScanner, load_yara_rules

    rules = [Path(p) for p in Path(args.rules_list).read_text().splitlines()]
    files = [Path(p) for p in Path(args.scan_list).read_text().splitlines()]
    start = time.perf_counter()
    ruleset = load_yara_rules(rules, cache_dir=Path(args.cache), engine=args.engine)
    loaded = time.perf_counter()
    scanner = YaraScanner(ruleset, workers=2, timeout=60, max_size=MAX_SIZE)
    matches = sorted({(d.rule_id, str(d.file)) for d in scanner.scan_paths(files)})
    done = time.perf_counter()
    report = {
        "engine": ruleset.engine,
        "from_cache": ruleset.from_cache,
        "load_s": loaded - start,
        "scan_s": done - loaded,
        "bytes": scanner.stats.bytes_scanned,
        "files": scanner.stats.files_scanned,
        "skipped": scanner.stats.files_skipped,
        "matches": matches,
    }
    json.dump(report, sys.stdout)


def cli_matches(stdout: str) -> list[tuple[str, str]]:
    found = set()
    for line in stdout.splitlines():
        rule, _, path = line.partition(" ")
        if path:
            found.add((rule, path))
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--rules-list", help=argparse.SUPPRESS)
    parser.add_argument("--scan-list", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.child:
        child(args)
        return
    if not shutil.which("yara") or not RULES.exists():
        sys.exit("needs Debian's yara (apt-get install yara) and ../shared/corpora/yara")

    files = build_dataset(DATA_DIR)
    total = sum(p.stat().st_size for p in files)
    listing = "\n".join(str(p) for p in files)
    work = Path(tempfile.mkdtemp(prefix="vigie-yara-bench-"))
    rules, dropped = rules_in_both(work)
    (work / "rules.txt").write_text("\n".join(str(p) for p in rules))
    (work / "scan.txt").write_text(listing)
    compile_for_cli(rules, work / "rules.yarc")
    print(f"data: {len(files)} files, {total / 1e6:.1f} MB; rules: {len(rules)} files", flush=True)

    vigie = [sys.executable, __file__, "--child", "--cache", str(work / "cache")]
    vigie += ["--rules-list", str(work / "rules.txt"), "--scan-list", str(work / "scan.txt")]
    tools = {
        "yara -p 2 (Debian)": ["yara", "-w", "-C", "-p", "2", "-a", "60"]
        + ["--scan-list", str(work / "rules.yarc"), str(work / "scan.txt")],
        "Vigie, yara-x": [*vigie, "--engine", "auto"],
        "Vigie, yara-python": [*vigie, "--engine", "yara-python"],
    }
    # The command as users run it, with its own engine choice; its cache in `work`.
    scan_env = {**os.environ, "XDG_CACHE_HOME": str(work / "xdg-cache")}
    command = shutil.which("vigie", path=str(Path(sys.executable).parent))
    if command:
        rule_args = [arg for path in rules for arg in ("--yara", str(path))]
        tools[SCAN] = [command, "scan", *rule_args, "--format", "jsonl", str(DATA_DIR)]
    for name in ("Vigie, yara-x", "Vigie, yara-python", SCAN):  # fill the compiled caches first
        if name in tools:
            measure(tools[name], scan_env)

    runs: dict[str, list[dict[str, float | str]]] = {name: [] for name in tools}
    for i in range(args.runs):
        for name, cmd in tools.items():
            runs[name].append(measure(cmd, scan_env))
        print(f"run {i + 1}/{args.runs} done", flush=True)

    matches: dict[str, list[tuple[str, str]]] = {}
    scan_s: dict[str, float] = {}
    for name, results in runs.items():
        last = str(results[-1]["stdout"])
        if name == SCAN:
            matches[name] = sorted(
                (d["rule_id"], d["file"]) for d in map(json.loads, last.splitlines())
            )
        elif name.startswith("Vigie"):
            report = json.loads(last)
            matches[name] = [tuple(m) for m in report["matches"]]
            scans = [json.loads(str(r["stdout"]))["scan_s"] for r in results]
            scan_s[name] = statistics.median(scans)
        else:
            matches[name] = cli_matches(last)

    text = report_text(args, files, total, rules, dropped, runs, matches, scan_s, listing)
    print(text)
    if args.write:
        from benchmarks.results import write_section

        write_section(SECTION, text)
    shutil.rmtree(work, ignore_errors=True)


def report_text(
    args: argparse.Namespace,
    files: list[Path],
    total: int,
    rules: list[Path],
    dropped: list[str],
    runs: dict[str, list[dict[str, float | str]]],
    matches: dict[str, list[tuple[str, str]]],
    scan_s: dict[str, float],
    listing: str,
) -> str:
    yara_cli = subprocess.run(["yara", "--version"], capture_output=True, text=True, check=True)
    med = {
        name: {k: statistics.median(float(r[k]) for r in rs) for k in ("wall", "cpu", "peak_mb")}
        for name, rs in runs.items()
    }
    base = "yara -p 2 (Debian)"
    lines = [
        f"{SECTION}: Vigie's scanner against Debian's `yara -p 2` and yara-x",
        "",
        f"Command: `python benchmarks/yara_vs_cli.py --runs {args.runs} --write` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.machine()}).",
        "",
        f"- Data: {len(files)} files, {total / 1e6:.1f} MB: the regular files of /usr/bin up to "
        "64 MiB and the EVTX and pcap corpora (`../shared/corpora/evtx`, `pcap`), copied to "
        f"tmpfs (`{DATA_DIR}`); list digest sha256 "
        f"`{hashlib.sha256(listing.encode()).hexdigest()[:16]}`.",
        f"- Rules: {len(rules)} signature-base files that compile in both "
        f"({len(dropped)} left out{': ' + '; '.join(dropped[:5]) if dropped else ''}).",
        f"- Versions: Debian yara {yara_cli.stdout.strip()}, yara-python {version('yara-python')}"
        f", yara-x {version('yara-x')}, Python {platform.python_version()}.",
        "- Every command is timed whole (start, rule loading, scan, exit); Vigie loads its rules"
        " from its compiled cache, yara from a `yarac` file (`-C`). Both use 2 workers and a 60 s"
        " timeout. Peak memory: PSS of the process tree. "
        f"Medians of {args.runs} interleaved runs.",
        "",
        "| tool | wall s | MB/s | CPU s | peak MB | scan-only s | ratio (MB/s vs yara) | matches |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in med.items():
        scan = f"{scan_s[name]:.2f}" if name in scan_s else "-"
        lines.append(
            f"| {name} | {m['wall']:.2f} | {total / 1e6 / m['wall']:.1f} | {m['cpu']:.2f} | "
            f"{m['peak_mb']:.0f} | {scan} | {med[base]['wall'] / m['wall']:.2f}x | "
            f"{len(matches[name])} |"
        )
    lines.append("")
    lines.extend(match_lines(matches, base))
    return "\n".join(lines) + "\n"


def match_lines(matches: dict[str, list[tuple[str, str]]], base: str) -> list[str]:
    """One line per command: its (rule, file) matches against the reference command's."""
    reference = set(matches[base])
    lines = []
    for name, found in matches.items():
        if name == base:
            continue
        extra, missing = set(found) - reference, reference - set(found)
        if not extra and not missing:
            lines.append(f"- Matches, {name}: the same {len(reference)} (rule, file) as yara.")
        else:
            lines.append(
                f"- Matches, {name}: {len(extra)} more, {len(missing)} fewer than yara "
                f"(e.g. more {sorted(extra)[:3]}, fewer {sorted(missing)[:3]}). Vigie sets "
                "`filename`/`filepath`/`extension`/`filetype`/`owner` per file; yara can only "
                "set one value for all files (here empty), so rules that test them differ."
            )
    return lines


if __name__ == "__main__":
    main()
