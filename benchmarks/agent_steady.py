"""The agent at a steady load: CPU and resident memory of `vigie agent run` while a log file
grows by `--rate` lines per second, next to GNU `tail -F` following the same file (the floor
cost of following a file, with no parsing, detection, spool or shipping).

    python benchmarks/agent_steady.py [--rate 1000] [--duration 60] [--runs 3] [--write]

Each run starts `vigie serve` (fresh data dir), enrolls one agent, starts it on a TOML
configuration that tails one file, and appends syslog lines at `--rate` per second for
`--duration` seconds (after a 10 s warm-up that is not measured). Measured from /proc: the
agent's CPU time over the measured window (share of one core) and its resident set size
(VmRSS, largest sample); the same for `tail -F FILE > /dev/null`. At the end the events stored
by the service must equal the lines written. Goal (issue #4): under 5% of one core and 150 MB.

Each run is made twice, one after the other: the agent as installed (its per-line modules
compiled with mypyc, see setup.py) and the agent with `VIGIE_PURE_PYTHON=1` (the pure-Python
fallback, issue 12).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "agent"
HEADING = "## Agent at a steady load"
VIGIE = str(Path(sys.executable).parent / "vigie")
FINESS = "750100125"
sys.path.insert(0, str(ROOT))

from benchmarks.results import compiled_modules  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(folder: Path) -> tuple[subprocess.Popen[str], str, str]:
    port = free_port()
    process = subprocess.Popen(
        [VIGIE, "serve", "--data-dir", str(folder / "service"), "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "VIGIE_SECRET_KEY": secrets.token_urlsafe(48)},  # production
    )
    password = ""
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"with password (\S+)", line)
        password = found.group(1) if found else password
        if "Application startup complete" in line:
            break
    threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
    return process, f"http://127.0.0.1:{port}", password


def enroll(url: str, password: str, folder: Path) -> Path:
    from cli.common import first_login

    with httpx.Client(base_url=url, timeout=60) as client:
        token, _ = first_login(client, password)
        client.headers["Authorization"] = f"Bearer {token}"
        client.post(
            "/establishments", json={"finess": FINESS, "name": "Pitié", "kind": "CHU"}
        ).raise_for_status()
        made = client.post(f"/establishments/{FINESS}/enrollment-tokens", json={})
    credential = folder / "agent.json"
    subprocess.run(
        [VIGIE, "agent", "enroll", "--server", url, "--token", made.json()["token"]]
        + ["--config", str(credential)],
        check=True,
        capture_output=True,
    )
    return credential


def write_lines(log: Path, rate: int, seconds: float, stop: threading.Event) -> int:
    written = 0
    began = time.monotonic()
    with log.open("a") as out:
        while not stop.is_set() and time.monotonic() - began < seconds:
            due = int((time.monotonic() - began) * rate)
            lines = [
                f"<134>Nov 20 10:00:00 srv-web-01 nginx[80]: GET /index.html 200 n={n}\n"
                for n in range(written, due)
            ]
            out.writelines(lines)
            out.flush()
            written = due
            time.sleep(0.05)
    return written


def one_run(number: int, args: argparse.Namespace, pure: bool) -> dict[str, Any]:
    folder = OUT / f"run{number}{'-pure' if pure else ''}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    service, url, password = start_service(folder)
    agent = tail = None
    try:
        credential = enroll(url, password, folder)
        log = folder / "app.log"
        log.touch()
        config = folder / "agent.toml"
        config.write_text(
            f'state_dir = "{folder / "state"}"\ncredentials = "{credential}"\n'
            f'[[sources]]\nkind = "tail"\npaths = ["{log}"]\n'
        )
        environment = {**os.environ, "VIGIE_PURE_PYTHON": "1" if pure else "0"}
        agent = subprocess.Popen(
            [VIGIE, "agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
        )
        tail = subprocess.Popen(["tail", "-F", "-n", "+1", str(log)], stdout=subprocess.DEVNULL)
        stop = threading.Event()
        total = {"written": 0}

        def writer() -> None:
            total["written"] = write_lines(log, args.rate, 10 + args.duration, stop)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(10)  # warm-up: rules loaded, caches filled
        agent_cpu0, tail_cpu0, t0 = cpu_seconds(agent.pid), cpu_seconds(tail.pid), time.monotonic()
        agent_rss, tail_rss = 0.0, 0.0
        while thread.is_alive():
            agent_rss = max(agent_rss, rss_mb(agent.pid))
            tail_rss = max(tail_rss, rss_mb(tail.pid))
            time.sleep(0.5)
        wall = time.monotonic() - t0
        agent_cpu = (cpu_seconds(agent.pid) - agent_cpu0) / wall
        tail_cpu = (cpu_seconds(tail.pid) - tail_cpu0) / wall
        from api.events.sqlite_store import SQLiteEventStore

        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline:
            store = SQLiteEventStore.in_data_dir(folder / "service")
            stored = store.count("events")
            store.close()
            if stored >= total["written"]:
                break
            time.sleep(1)
    finally:
        for process in (agent, tail, service):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    run = {
        "agent_cpu": agent_cpu,
        "agent_rss": agent_rss,
        "tail_cpu": tail_cpu,
        "tail_rss": tail_rss,
        "written": total["written"],
        "stored": stored,
    }
    print(
        f"run {number}{' (pure Python)' if pure else ''}: agent {agent_cpu:.1%} of a core, "
        f"{agent_rss:.0f} MB; tail -F "
        f"{tail_cpu:.1%}, {tail_rss:.1f} MB; lines written {total['written']:,}, stored "
        f"{stored:,}",
        flush=True,
    )
    return run


def report(
    runs: list[dict[str, Any]], pure_runs: list[dict[str, Any]], args: argparse.Namespace
) -> str:
    def med(key: str, of: list[dict[str, Any]] = runs) -> float:
        return statistics.median(r[key] for r in of)

    def cpu_row(name: str, of: list[dict[str, Any]]) -> str:
        return (
            f"| {name} | {med('agent_cpu', of):.1%} | "
            + ", ".join(f"{r['agent_cpu']:.1%}" for r in of)
            + f" | {med('agent_rss', of):.0f} | "
            + ", ".join(f"{r['agent_rss']:.0f}" for r in of)
            + " |"
        )

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    tail_version = subprocess.run(["tail", "--version"], capture_output=True, text=True).stdout
    lines = [
        HEADING,
        "",
        f"Command: `python benchmarks/agent_steady.py --rate {args.rate} --duration "
        f"{args.duration:g} --runs {args.runs}" + " --write" * args.write + "`.",
        "",
        f"Data: syslog lines appended to one file at {args.rate:,} lines/s; measured over "
        f"{args.duration:g} s after a 10 s warm-up. The agent tails the file, runs Vigie's "
        "Sigma rules, pseudonymises, spools (SQLite, synced) and ships to `vigie serve` on "
        "loopback; `tail -F -n +1 FILE > /dev/null` follows the same file.",
        "",
        f"Versions: Python {sys.version.split()[0]}, {tail_version.splitlines()[0]}, "
        f"Vigie {commit}; 2 cores.",
        "",
        "| process | CPU (share of one core), median | runs | RSS MB, median | runs |",
        "| --- | --- | --- | --- | --- |",
        cpu_row(f"vigie agent run (compiled: {compiled_modules()} modules)", runs),
        cpu_row("vigie agent run, `VIGIE_PURE_PYTHON=1`", pure_runs),
        f"| tail -F | {med('tail_cpu'):.1%} | "
        + ", ".join(f"{r['tail_cpu']:.1%}" for r in runs)
        + f" | {med('tail_rss'):.1f} | "
        + ", ".join(f"{r['tail_rss']:.1f}" for r in runs)
        + " |",
        "",
        "Goal: under 5% of one core and 150 MB: CPU "
        + ("met" if med("agent_cpu") < 0.05 else "not met")
        + f" ({med('agent_cpu') / 0.05:.2f}x the budget), memory "
        + ("met" if med("agent_rss") < 150 else "not met")
        + f" ({med('agent_rss'):.0f} MB); pure Python: CPU "
        + ("met" if med("agent_cpu", pure_runs) < 0.05 else "not met")
        + f" ({med('agent_cpu', pure_runs) / 0.05:.2f}x the budget). Lines written / events "
        "stored: "
        + "; ".join(f"{r['written']:,} / {r['stored']:,}" for r in runs + pure_runs)
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    runs, pure_runs = [], []
    for n in range(args.runs):  # alternated, so that a slower moment of the machine hits both
        runs.append(one_run(n + 1, args, pure=False))
        pure_runs.append(one_run(n + 1, args, pure=True))
    text = report(runs, pure_runs, args)
    print(text)
    if args.write:
        from benchmarks.results import RESULTS, write_section

        if HEADING not in RESULTS.read_text(encoding="utf-8"):
            RESULTS.write_text(RESULTS.read_text(encoding="utf-8").rstrip() + "\n\n" + HEADING)
        write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
