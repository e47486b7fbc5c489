"""`vigie demo`: the whole system on one machine.

It starts the national service on a fresh data directory (SQLite), registers four simulated
establishments (a CHU, a clinic, two EHPAD) and enrolls one real agent process for each. Each
agent then tails log files into which the demo replays the project's own samples (`samples/`,
hand-made: no real patient, nothing from ../shared), and two of them read a network capture the
demo makes (cli/demo_traffic.py: HL7 and DICOM reached from the Internet), so detections and
incidents reach the service within a minute. It prints where to look and a summary, and stops
everything cleanly on Ctrl-C (or after `--duration` seconds).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.common import fail, first_login

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
VIGIE = [sys.executable, "-m", "cli.main"]


@dataclass(frozen=True)
class Site:
    key: str
    first_eight: str  # FINESS without its check key (computed): simulated establishments
    name: str
    kind: str
    samples: tuple[str, ...]  # files of samples/ replayed into its agent's logs
    capture: bool = False  # its agent also reads the demo's network capture


SITES = (
    Site("chu", "75099004", "CHU de démonstration", "CHU", ("windows-events.jsonl",)),
    Site(
        "clinique",
        "33099001",
        "Clinique de démonstration",
        "clinic",
        ("network-and-web.jsonl",),
        capture=True,
    ),
    Site("ehpad-1", "69099002", "EHPAD Les Tilleuls (démo)", "EHPAD", ("windows-events.jsonl",)),
    Site(
        "ehpad-2",
        "29099003",
        "EHPAD Les Mimosas (démo)",
        "EHPAD",
        ("network-and-web.jsonl",),
        capture=True,
    ),
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("demo", help="the national service and a fleet of agents")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--port", type=int, default=8000, help="the service's port (8000)")
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (0: on Ctrl-C)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import httpx

    from api.establishments.finess import check_key

    root = args.data_dir or Path(tempfile.mkdtemp(prefix="vigie-demo-"))
    if root.exists() and any(root.iterdir()):
        return fail(f"{root} is not empty: the demo starts from a fresh directory")
    if not _port_free(args.port):
        return fail(f"port {args.port} is taken: choose another with --port")
    root.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[str]] = []
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    try:
        url = f"http://127.0.0.1:{args.port}"
        service, password = _start_service(root, args.port)
        processes.append(service)
        with httpx.Client(base_url=url, timeout=30) as client:
            token, password = first_login(client, password)
            print(f"national service: {url}  (admin password: {password})", flush=True)
            client.headers["Authorization"] = f"Bearer {token}"
            for site in SITES:
                finess = site.first_eight + check_key(site.first_eight)
                client.post(
                    "/establishments", json={"finess": finess, "name": site.name, "kind": site.kind}
                ).raise_for_status()
                enrollment = client.post(
                    f"/establishments/{finess}/enrollment-tokens", json={"max_uses": 1}
                ).raise_for_status()
                agent = _start_agent(root / "agents" / site.key, url, enrollment.json()["token"])
                processes.append(agent)
                print(f"  {site.kind:6} {finess}  {site.name}: agent pid {agent.pid}", flush=True)
            threads = [
                threading.Thread(target=_replay, args=(root / "agents" / s.key, s, stop))
                for s in SITES
            ]
            for thread in threads:
                thread.start()
            incidents = _wait_for_incidents(client, stop, timeout=90)
            _summary(client, url, incidents)
            print("Ctrl-C stops the demo." if not args.duration else "", flush=True)
            # Short waits: a Ctrl-C the kernel hands to another thread is only acted on when
            # the main thread next runs Python code.
            ends = time.monotonic() + args.duration if args.duration else float("inf")
            while not stop.wait(0.5) and time.monotonic() < ends:
                pass
            stop.set()
            for thread in threads:
                thread.join()
    except (httpx.HTTPError, RuntimeError) as exc:
        return fail(f"the demo could not start: {exc}", status=1)
    finally:
        stop.set()
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        print(f"stopped; everything the demo made is in {root}", flush=True)
    return 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_service(root: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    log = (root / "service.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - this very program, fixed arguments
        [*VIGIE, "serve", "--data-dir", str(root / "service"), "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=log,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        # A demo on one machine: the service generates its own secret (production, the
        # default, requires VIGIE_SECRET_KEY).
        env={**os.environ, "VIGIE_ENVIRONMENT": "development"},
    )
    assert process.stderr is not None
    password = ""
    for line in process.stderr:
        log.write(line)
        found = re.search(r"with password (\S+)", line)
        password = found.group(1) if found else password
        if "Application startup complete" in line:
            break
    else:
        raise RuntimeError(f"vigie serve exited with {process.wait()}: see {root}/service.log")

    def drain() -> None:  # keep the pipe flowing into the log file
        for line in process.stderr or ():
            log.write(line)
            log.flush()

    threading.Thread(target=drain, daemon=True).start()
    return process, password


def _start_agent(folder: Path, url: str, token: str) -> subprocess.Popen[str]:
    (folder / "logs").mkdir(parents=True)
    (folder / "captures").mkdir()
    credential = folder / "agent.json"
    enrolled = subprocess.run(  # noqa: S603 - this very program, fixed arguments
        [*VIGIE, "agent", "enroll", "--server", url, "--token", token]
        + ["--hostname", f"collect-{folder.name}", "--config", str(credential)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if enrolled.returncode != 0:
        raise RuntimeError(f"agent enrollment failed: {enrolled.stderr.strip()}")
    config = folder / "agent.toml"
    config.write_text(
        f'state_dir = "{folder / "state"}"\n'
        f'credentials = "{credential}"\n'
        "[delivery]\nheartbeat_seconds = 10\nbundle_seconds = 30\n"
        f'[[sources]]\nkind = "tail"\npaths = ["{folder / "logs"}/*.jsonl"]\n'
        f'[[sources]]\nkind = "pcap"\nfolder = "{folder / "captures"}"\n',
        encoding="utf-8",
    )
    return subprocess.Popen(  # noqa: S603 - this very program, fixed arguments
        [*VIGIE, "agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "agent.log").open("w"),
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _replay(folder: Path, site: Site, stop: threading.Event) -> None:
    """Write the samples into the agent's log files a few lines at a time, as a day's logs
    would arrive, only faster; first, the capture of a site that has one."""
    if site.capture:
        from cli.demo_traffic import write_capture

        # Written aside, then renamed: the agent reads a capture once it is whole.
        partial = folder / "span.pcap.part"
        write_capture(partial, time.time() - 60)
        partial.rename(folder / "captures" / "span-0001.pcap")
    for name in site.samples:
        lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines(keepends=True)
        with (folder / "logs" / name).open("a", encoding="utf-8") as out:
            for start in range(0, len(lines), 20):
                if stop.is_set():
                    return
                out.writelines(lines[start : start + 20])
                out.flush()
                stop.wait(0.2)


def _wait_for_incidents(client: Any, stop: threading.Event, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    quiet_since = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline:
        items = client.get("/incidents", params={"limit": 500}).json()["items"]
        if len(items) != len(seen):
            seen, quiet_since = items, time.monotonic()
        elif seen and time.monotonic() - quiet_since > 8:
            break  # nothing new for a while: the replay has been digested
        stop.wait(1)
    return seen


def _summary(client: Any, url: str, incidents: list[Any]) -> None:
    names = {e["finess"]: e["name"] for e in client.get("/establishments").json()["items"]}
    by_site = Counter(names.get(i["establishment"], i["establishment"]) for i in incidents)
    by_severity = Counter(i["severity"] for i in incidents)
    campaigns = client.get("/campaigns").json()
    print(f"\n{len(incidents)} incident(s) opened from the agents' detections:", flush=True)
    for site, count in sorted(by_site.items()):
        print(f"  {count:3}  {site}")
    print("  by severity: " + ", ".join(f"{k} {v}" for k, v in sorted(by_severity.items())))
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    for incident in sorted(incidents, key=lambda i: rank.get(i["severity"], 9))[:8]:
        where = names.get(incident["establishment"], incident["establishment"])
        print(f"  - [{incident['severity']}] {incident['title']} ({incident['host']}, {where})")
    print(f"{len(campaigns)} national campaign(s) across establishments")
    print(
        f"\nWhere to look: {url}/docs (log in with /auth/token), {url}/incidents, "
        f"{url}/campaigns, {url}/agents",
        flush=True,
    )
