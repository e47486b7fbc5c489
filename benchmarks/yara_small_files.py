"""YARA on many small files: `vigie scan --yara` against Debian's `yara -p 2`, whole commands.

    python benchmarks/yara_small_files.py [--runs 5] [--files 4412] [--seed 12] [--write]

Data: a tree of 4,600 files, about 190 MB: 4,412 files (sizes log-normal, median 16 KiB, at most
2 MiB) generated from a seed into benchmarks/out/yara-small-files (ignored by git), and the 188
files of the EVTX corpus (../shared/corpora/evtx, 12 MB), in which signature-base finds
PowerShell loaders, so that the matches of every tool can be compared. Each generated file is a
slice of a real file of this machine (Python's standard library and this venv's packages: text,
scripts, ELF libraries, Windows launchers; /usr/share/doc and /usr/lib text and binaries), chosen
and cut by the seeded generator, keeping the source's extension so that the `extension` and
`filetype` externals vary as on a file share. It is the kind of tree an establishment's file
share or web root is, where the start of a command weighs as much as the scan. Both are copied
to tmpfs so that every tool reads from memory.

Rules: the signature-base files of ../shared/corpora/yara that compile both in Vigie and in
Debian's `yarac` (as in yara_vs_cli.py). Each run measures, for each command in turn
(interleaved): wall time, CPU time and peak PSS of the whole command; warm: Vigie's compiled
rule cache is filled before the first measured run, yara loads a `yarac` file (`-C`).

Peers: `yara -C -p 2 -r`; the `vigie scan --yara` command as installed (its own engine choice);
the same forced to each engine (`--yara-engine`); the yara-x CLI `yr` only when installed.
With `--write`, the section below is written into benchmarks/RESULTS.md (added at the end of the
YARA sections when absent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.yara_vs_cli import (  # noqa: E402
    RULES,
    cli_matches,
    compile_for_cli,
    match_lines,
    measure,
    rules_in_both,
)

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out" / "yara-small-files"
SHM = Path("/dev/shm/vigie-yara-small-files")
EVTX = REPO.parent / "shared" / "corpora" / "evtx"
SECTION = "## YARA on many small files"
AFTER = "## YARA: reading the figures"
MAX_FILE = 2 * 2**20
MEDIAN_FILE = 16 * 2**10
SIGMA = 1.35  # log-normal spread: mean about 40 KB for a 16 KiB median
SOURCE_ROOTS = (
    Path(sysconfig.get_paths()["stdlib"]),
    Path(sysconfig.get_paths()["purelib"]),
    Path("/usr/share/doc"),
    Path("/usr/lib/x86_64-linux-gnu"),
)


def source_files() -> list[list[Path]]:
    """Per source folder, its regular files of at least 1 KiB, in a stable order."""
    roots: list[list[Path]] = []
    for root in SOURCE_ROOTS:
        found: list[Path] = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder, name)
                if path.is_symlink() or not path.is_file() or name.endswith(".pyc"):
                    continue
                if path.stat().st_size >= 1024 and os.access(path, os.R_OK):
                    found.append(path)
        if found:
            roots.append(found)
    return roots


def build_tree(dest: Path, count: int, seed: int) -> None:
    """Write `count` files into `dest` (in folders of at most 100), once per (count, seed).

    Each file: a source folder drawn evenly (so that Python's many small modules do not make
    every file text), a file in it, a size, and a start; a source shorter than the size is
    followed by the next files of its folder, as a file share's archives and logs hold several
    kinds of content."""
    stamp = dest / ".generated"
    wanted = json.dumps({"count": count, "seed": seed, "layout": 2})
    if stamp.exists() and stamp.read_text() == wanted:
        return
    shutil.rmtree(dest, ignore_errors=True)
    rng = random.Random(seed)
    roots = source_files()
    for i in range(count):
        size = min(MAX_FILE, max(64, int(rng.lognormvariate(0, SIGMA) * MEDIAN_FILE)))
        sources = roots[rng.randrange(len(roots))]
        first = rng.randrange(len(sources))
        chunks: list[bytes] = []
        left = size
        for source in sources[first:] + sources[:first]:
            with source.open("rb") as fh:
                total = fh.seek(0, os.SEEK_END)
                start = 0 if total <= left or rng.random() < 0.4 else rng.randrange(total - left)
                fh.seek(start)
                chunks.append(fh.read(left))
            left -= len(chunks[-1])
            if left <= 0:
                break
        folder = dest / f"d{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = sources[first].suffix[:8]
        (folder / f"f{i:05d}{suffix}").write_bytes(b"".join(chunks))
    stamp.write_text(wanted)


def tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def vigie_matches(stdout: str) -> list[tuple[str, str]]:
    found = set()
    for line in stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            found.add((record["rule_id"], record["file"]))
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=4412, help="generated files")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    vigie = shutil.which("vigie", path=str(Path(sys.executable).parent))
    if not shutil.which("yara") or not RULES.exists() or not EVTX.exists() or vigie is None:
        sys.exit("needs Debian's yara, ../shared/corpora (yara, evtx) and `vigie` in this venv")

    build_tree(OUT, args.files, args.seed)
    shutil.rmtree(SHM, ignore_errors=True)
    shutil.copytree(OUT, SHM, ignore=shutil.ignore_patterns(".generated"))
    shutil.copytree(EVTX, SHM / "evtx")
    files = tree_files(SHM)
    total = sum(p.stat().st_size for p in files)
    listing = "\n".join(f"{p.relative_to(SHM)} {p.stat().st_size}" for p in files)
    work = Path(tempfile.mkdtemp(prefix="vigie-yara-small-"))
    rules, dropped = rules_in_both(work)
    compile_for_cli(rules, work / "rules.yarc")
    print(f"data: {len(files)} files, {total / 1e6:.1f} MB; rules: {len(rules)} files", flush=True)

    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    rule_args = [arg for path in rules for arg in ("--yara", str(path))]
    scan = [vigie, "scan", *rule_args, "--format", "jsonl", str(SHM)]
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "yara -p 2 (Debian)": (
            ["yara", "-w", "-C", "-p", "2", "-a", "60", "-r", str(work / "rules.yarc"), str(SHM)],
            env,
        ),
        "vigie scan": (scan, env),
        "vigie scan --yara-engine yara-x": ([*scan, "--yara-engine", "yara-x"], env),
        "vigie scan --yara-engine yara-python": ([*scan, "--yara-engine", "yara-python"], env),
    }
    yr = shutil.which("yr")
    if yr:
        commands["yr scan -p 2 (yara-x CLI)"] = (
            [yr, "scan", "-p", "2", "-r", *map(str, rules), str(SHM)],
            env,
        )
    for name, (cmd, cmd_env) in commands.items():  # warm: caches filled, files in memory
        if name.startswith("vigie"):
            measure(cmd, cmd_env)

    runs: dict[str, list[dict[str, float | str]]] = {name: [] for name in commands}
    for i in range(args.runs):
        for name, (cmd, cmd_env) in commands.items():
            runs[name].append(measure(cmd, cmd_env))
        print(f"run {i + 1}/{args.runs} done", flush=True)

    matches = {
        name: (vigie_matches if name.startswith("vigie") else cli_matches)(str(rs[-1]["stdout"]))
        for name, rs in runs.items()
    }
    text = report_text(args, files, total, rules, dropped, runs, matches, listing, commands)
    print(text)
    if args.write:
        write_section(text)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(SHM, ignore_errors=True)  # memory; the tree stays in benchmarks/out


def report_text(
    args: argparse.Namespace,
    files: list[Path],
    total: int,
    rules: list[Path],
    dropped: list[str],
    runs: dict[str, list[dict[str, float | str]]],
    matches: dict[str, list[tuple[str, str]]],
    listing: str,
    commands: dict[str, tuple[list[str], dict[str, str]]],
) -> str:
    yara_cli = subprocess.run(["yara", "--version"], capture_output=True, text=True, check=True)
    med = {
        name: {k: statistics.median(float(r[k]) for r in rs) for k in ("wall", "cpu", "peak_mb")}
        for name, rs in runs.items()
    }
    base = "yara -p 2 (Debian)"
    sizes = sorted(p.stat().st_size for p in files)
    lines = [
        f"{SECTION}: `vigie scan --yara` against Debian's `yara -p 2`",
        "",
        f"Command: `python benchmarks/yara_small_files.py --runs {args.runs} --files {args.files}"
        f" --seed {args.seed} --write` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"{platform.machine()}, load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}).",
        "",
        f"- Data: {len(files)} files, {total / 1e6:.1f} MB (median {sizes[len(sizes) // 2]} "
        f"bytes, largest {sizes[-1]}): {args.files} slices of this machine's files cut by a "
        "seeded generator (see the script) and the EVTX corpus (`../shared/corpora/evtx`), "
        f"copied to tmpfs (`{SHM}`); listing digest sha256 "
        f"`{hashlib.sha256(listing.encode()).hexdigest()[:16]}`.",
        f"- Rules: {len(rules)} signature-base files that compile in both "
        f"({len(dropped)} left out{': ' + '; '.join(dropped[:5]) if dropped else ''}).",
        f"- Versions: Debian yara {yara_cli.stdout.strip()}, yara-python {version('yara-python')}"
        f", yara-x {version('yara-x')}, Python {platform.python_version()}.",
        f"- Commands: `yara -w -C -p 2 -a 60 -r rules.yarc TREE`; `vigie scan --yara RULE ... "
        "--format jsonl TREE` (its default workers: every core), with a warm compiled-rule "
        "cache; `--yara-engine yara-x|yara-python` forces an engine. Whole commands timed "
        f"(start, rule loading, scan, output, exit). Medians of {args.runs} interleaved runs.",
        "",
        "| command | wall s | MB/s | CPU s | peak MB | ratio (speed vs yara) | matches |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in med.items():
        lines.append(
            f"| {name} | {m['wall']:.2f} | {total / 1e6 / m['wall']:.1f} | {m['cpu']:.2f} | "
            f"{m['peak_mb']:.0f} | {med[base]['wall'] / m['wall']:.2f}x | {len(matches[name])} |"
        )
    lines.append("")
    walls = {name: ", ".join(f"{float(r['wall']):.2f}" for r in rs) for name, rs in runs.items()}
    lines.append("Wall times per run: " + "; ".join(f"{n}: {w}" for n, w in walls.items()) + ".")
    lines.append("")
    lines.extend(match_lines(matches, base))
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    from benchmarks.results import RESULTS
    from benchmarks.results import write_section as replace

    current = RESULTS.read_text(encoding="utf-8")
    if SECTION in current:
        replace(SECTION, text)
        return
    # First write: after the hand-written YARA section, so both YARA tables stay together.
    start = current.index(AFTER)
    end = current.find("\n## ", start + 1)
    end = len(current) if end == -1 else end + 1
    RESULTS.write_text(current[:end] + text + "\n" + current[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
