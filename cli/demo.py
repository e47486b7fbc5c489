"""`vigie demo`: the whole system on one machine.

It starts the national service on a fresh data directory (SQLite), registers four simulated
establishments (a CHU, a clinic, two EHPAD) and enrolls one real agent process for each. Each
agent then tails log files into which the demo replays the project's own samples (`samples/`,
hand-made: no real patient, nothing from ../shared), and three of them read network captures
the demo makes, so detections and incidents reach the service within a minute.

The establishments have different cyber-maturity postures: the clinic's network shows HL7 and
DICOM reached from the Internet (cli/demo_traffic.py), remote desktop reached from the Internet,
SMBv1, TLS 1.0 and HL7 leaving in clear (cli/hygiene_traffic.py), and it answers the
questionnaire partly; the CHU's network is clean and it answers well; one EHPAD's network is
clean; the other EHPAD has no network sensor and declares a second site without an agent. Once
the incidents are in, the demo runs the maturity job and prints each score and level. It
prints where to look, and stops everything cleanly on Ctrl-C (or after `--duration` seconds).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.common import fail, first_login

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLES_DAY = date(2026, 11, 20)  # the day the samples' logs were written for
VIGIE = [sys.executable, "-m", "cli.main"]


@dataclass(frozen=True)
class Site:
    key: str
    first_eight: str  # FINESS without its check key (computed): simulated establishments
    name: str
    kind: str
    samples: tuple[str, ...]  # files of samples/ replayed into its agent's logs
    captures: tuple[str, ...] = ()  # network captures its agent reads (CAPTURES)
    # Its maturity posture: the sites it declares (its agent is on the first), the sources
    # it expects, its profile flags, and how well it answers the questionnaire.
    sites: tuple[str, ...] = ("site principal",)
    sources: tuple[str, ...] = ("windows",)
    flags: tuple[tuple[str, bool], ...] = ()
    servers: tuple[str, ...] = ()  # host name patterns of its servers (the rest: workstations)
    answers: str = "none"  # good | partial | poor | none
    legal_status: str = "public"  # the statistics' cut (api/establishments/schemas.LegalStatus)


SITES = (
    Site(
        "chu",
        "75099004",
        "CHU de démonstration",
        "CHU",
        ("windows-healthy.jsonl",),
        captures=("good",),
        sites=("hôpital central",),
        sources=("windows", "network"),
        flags=(("has_active_directory", True), ("publishes_internet_services", True)),
        servers=("SRV-*",),
        answers="good",
    ),
    Site(
        "clinique",
        "33099001",
        "Clinique de démonstration",
        "clinic",
        ("network-and-web.jsonl",),
        captures=("exposed", "bad"),
        sources=("network", "logs"),
        flags=(("has_hl7", True), ("has_dicom", True)),
        answers="partial",
        legal_status="private_commercial",
    ),
    Site(
        "ehpad-1",
        "69099002",
        "EHPAD Les Tilleuls (démo)",
        "EHPAD",
        ("windows-events.jsonl",),
        sites=("Les Tilleuls", "annexe Les Lilas"),  # the annex has no agent
        flags=(("has_dicom", False), ("has_hl7", False)),
        answers="poor",
    ),
    Site(
        "ehpad-2",
        "29099003",
        "EHPAD Les Mimosas (démo)",
        "EHPAD",
        ("network-and-web.jsonl", "windows-healthy.jsonl"),
        captures=("good",),
        sources=("network", "windows", "logs"),
        flags=(("has_dicom", False),),
        servers=("SRV-*",),
        answers="partial",
        legal_status="private_nonprofit",
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
                identity = {"finess": finess, "name": site.name, "kind": site.kind}
                client.post(
                    "/establishments", json={**identity, "legal_status": site.legal_status}
                ).raise_for_status()
                _declare(client, url, finess, site)
                enrollment = client.post(
                    f"/establishments/{finess}/enrollment-tokens",
                    json={"max_uses": 1, "site": site.sites[0]},
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
            _summary(client, incidents)
            if not stop.is_set():
                _maturity(client)
            logins = _dashboard_logins(client)  # publishes the CERT's alert too
            print(f"\nDashboard: {url}/ (log in at {url}/login)", flush=True)
            for who, (username, secret) in logins.items():
                print(f"  {who:44} {username:16} {secret}", flush=True)
            if not stop.is_set():
                _reports(client, root)  # after the alert: the acknowledgements list it
            print(
                f"\nWhere to look: {url}/ (the dashboard), {url}/docs (the JSON API: log in "
                f"with /auth/token), {url}/incidents, {url}/campaigns, {url}/agents, "
                f"{url}/establishments/<FINESS>/maturity",
                flush=True,
            )
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


def _dashboard_logins(client: Any) -> dict[str, tuple[str, str]]:
    """Three ready accounts for the dashboard, and an alert of the CERT for the CHU to
    acknowledge there. The passwords are made here and printed: a demo's, nobody else's."""
    from api.establishments.finess import check_key

    chu = next(s for s in SITES if s.kind == "CHU")
    chu_finess = chu.first_eight + check_key(chu.first_eight)
    accounts = {
        "analyste du CERT": ("analyste", {"role": "cert"}),
        f"équipe informatique, {chu.name}": (
            "dsi-chu",
            {"role": "establishment", "establishment": chu_finess},
        ),
        "auditeur (lecture seule)": ("auditeur", {"role": "auditor"}),
    }
    out = {}
    for who, (username, extra) in accounts.items():
        secret = secrets.token_urlsafe(12)
        client.post(
            "/users", json={"username": username, "password": secret, **extra}
        ).raise_for_status()
        out[who] = (username, secret)
    client.post(
        "/alerts",
        json={
            "title": "Rançongiciel : mettre à jour les passerelles VPN exposées",
            "description": "Exploitation active d'une vulnérabilité des passerelles VPN "
            "(démonstration). Appliquer le correctif et vérifier les journaux.",
            "severity": "high",
            "tlp": "amber",
            "indicators": [{"type": "ip", "value": "203.0.113.66"}],
            "target": {"all": True},
            "retro_hunt_days": 0,
        },
    ).raise_for_status()
    return out


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
    for n, name in enumerate(site.captures, start=1):
        # Written aside, then renamed: the agent reads a capture once it is whole.
        partial = folder / "span.pcap.part"
        CAPTURES[name](partial, time.time() - 60)
        partial.rename(folder / "captures" / f"span-{n:04d}.pcap")
    days = (datetime.now(UTC).date() - SAMPLES_DAY).days - 1
    for name in site.samples:
        text = (SAMPLES / name).read_text(encoding="utf-8")
        lines = [_shifted(line, days) for line in text.splitlines(keepends=True)]
        with (folder / "logs" / name).open("a", encoding="utf-8") as out:
            for start in range(0, len(lines), 20):
                if stop.is_set():
                    return
                out.writelines(lines[start : start + 20])
                out.flush()
                stop.wait(0.2)


def _shifted(line: str, days: int) -> str:
    """A sample line moved `days` later: the samples are a day of logs written for
    SAMPLES_DAY, replayed as yesterday's, so that what they show is recent evidence."""
    if days <= 0:
        return line
    line = line.replace(SAMPLES_DAY.isoformat(), (SAMPLES_DAY + timedelta(days=days)).isoformat())
    return re.sub(r'("ts": )(\d+(?:\.\d+)?)', lambda m: f"{m[1]}{float(m[2]) + days * 86400}", line)


def _capture(name: str) -> Any:
    def write(path: Path, start: float) -> int:
        from cli import demo_traffic, hygiene_traffic

        writer = {
            "exposed": demo_traffic.write_capture,
            "bad": hygiene_traffic.write_bad_hygiene,
            "good": hygiene_traffic.write_good_hygiene,
        }[name]
        return writer(path, start)

    return write


CAPTURES = {name: _capture(name) for name in ("exposed", "bad", "good")}


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


def _summary(client: Any, incidents: list[Any]) -> None:
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
    print(f"{len(campaigns)} national campaign(s) across establishments", flush=True)


def _declare(client: Any, url: str, finess: str, site: Site) -> None:
    """What the establishment's IT team declares for its maturity score, through an API key
    of its own (the establishment role: the admin may not declare for it)."""
    import httpx

    from api.maturity.framework import default

    made = client.post(
        "/api-keys",
        json={"name": f"demo-{site.key}", "role": "establishment", "establishment": finess},
    ).raise_for_status()
    base = f"/establishments/{finess}/maturity"
    with httpx.Client(base_url=url, timeout=30) as own:
        own.headers["Authorization"] = f"Bearer {made.json()['key']}"
        own.put(
            f"{base}/profile",
            json={
                "flags": dict(site.flags),
                "sites": list(site.sites),
                "expected_sources": list(site.sources),
                "server_hosts": list(site.servers),
                "reason": "déclaration initiale (démo)",
            },
        ).raise_for_status()
        for control in default().controls:
            question = control.evidence.question
            answer = _answer(question.type, question, site.answers) if question else None
            if answer is not None:
                own.put(f"{base}/answers/{control.id}", json=answer).raise_for_status()


def _answer(kind: str, question: Any, quality: str) -> dict[str, Any] | None:
    """An answer as good, partial or poor as the posture; none for every other question."""
    if quality == "none" or (quality == "poor" and kind != "scale"):
        return None
    if kind == "scale":
        return {"choice": {"good": "oui", "partial": "partiel", "poor": "ne_sait_pas"}[quality]}
    if kind == "date":
        age = 60 if quality == "good" else question.max_age_days + 30  # too old to count
        return {"date": (datetime.now(UTC).date() - timedelta(days=age)).isoformat()}
    return {"number": question.target if quality == "good" else question.target / 2}


def _maturity(client: Any) -> None:
    """Run the maturity job now, and print each establishment's score and level."""
    from api.maturity.framework import default

    run = client.post("/jobs/maturity/run").raise_for_status().json()
    if run.get("outcome") != "ok":
        print(f"\nmaturity job: {run.get('outcome')} {run.get('detail', '')}", flush=True)
        return
    framework = default()
    print(f"\nCyber-maturity ({framework.id} {framework.version}, 40 controls):", flush=True)
    for site in SITES:
        from api.establishments.finess import check_key

        finess = site.first_eight + check_key(site.first_eight)
        doc = client.get(f"/establishments/{finess}/maturity").raise_for_status().json()
        fix = doc["fixes"][0] if doc["fixes"] else None
        first = f"; first fix {fix['control']} (+{fix['gain']:.1f} pts)" if fix else ""
        print(
            f"  {site.name:28} score {doc['score']:5.1f}/100  level {doc['level']} "
            f"({doc['level_name']}), evidence for {doc['coverage']:.0%} of the weight{first}",
            flush=True,
        )


def _reports(client: Any, root: Path) -> None:
    """Download a few auditor reports through the API, as an auditor would, into
    `<data dir>/rapports/` (the same `as_of` would give the same bytes again)."""
    from api.establishments.finess import check_key

    clinic = next(s for s in SITES if s.key == "clinique")
    finess = clinic.first_eight + check_key(clinic.first_eight)
    # To the microsecond: the maturity job ran within this second, and a report says what
    # was known at its as_of.
    as_of = datetime.now(UTC).isoformat()
    folder = root / "rapports"
    folder.mkdir(exist_ok=True)
    print("\nAuditor reports (GET /reports/{kind}, also `vigie report KIND`):", flush=True)
    for kind, params in (
        ("maturity", {"finess": finess, "format": "pdf"}),
        ("maturity", {"finess": finess, "format": "xlsx"}),
        ("registry", {"format": "xlsx"}),
        ("stats", {"format": "xlsx"}),
        ("acknowledgements", {"format": "csv"}),
    ):
        answer = client.get(f"/reports/{kind}", params={**params, "as_of": as_of})
        if answer.status_code != 200:
            print(f"  {kind}: {answer.status_code} {answer.text[:200]}", flush=True)
            continue
        name = answer.headers["content-disposition"].split('filename="')[1].rstrip('"')
        (folder / name).write_bytes(answer.content)
        print(f"  {folder / name}", flush=True)
