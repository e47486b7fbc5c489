"""The agent's loop: sources -> detect -> durable spool -> ship, with heartbeats and bundle
updates on the side.

Two threads that never wait on each other, sharing only the spool (whose lock is never held
across network I/O) and a few plain values:
- collecting (the caller of `run`): sources -> privacy -> detect -> spool, in this order, so
  that the spool holds an event (and the source's checkpoint past it) before anything else is
  done with it; it also applies a bundle the other thread fetched (the Detector is its own)
  and takes the sources' statistics for the heartbeat (sources are not thread-safe);
- delivering: batches to the service, heartbeats, bundle fetches. A service that hangs holds
  this thread only: reading, spooling (and a UDP listener's queue) go on.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from collector.bundle import BundleStore, indicator_matcher, rule_texts
from collector.config import AgentConfig, plain_http_refusal
from collector.files import write_atomically
from collector.filescan import FolderScanner
from collector.privacy import PrivacyFilter, load_key
from collector.shipper import AgentRevoked, Backoff, Shipper
from collector.spool import Spool
from detection.event import Event
from detection.indicators import IndicatorMatcher
from detection.sigma import SigmaEngine, SigmaRuleSet, load_sigma_rules
from detection.sigma.engine import Correlator
from detection.sigma.yaml_guard import YamlRefused, check_plain_yaml, check_size
from detection.yara import YaraRuleSet, load_yara_rules

log = logging.getLogger("vigie.agent")
STATUS_FILE = "status.json"
REPO_RULES = Path(__file__).resolve().parent.parent / "rules" / "sigma"
# The cyclic garbage collector while the loop runs: a turn makes thousands of short-lived
# containers (500 events at 1,000/s) that reference counting frees; at Python's default of
# one young collection per 700 allocations, events still in the turn were traversed and
# promoted over and over, and each full collection walked every object of the rules and
# libraries. A larger young generation, and those objects frozen out of the collector once
# loaded, took about a tenth of the agent's CPU away (issue 12).
YOUNG_COLLECTION = 20_000


class Source(Protocol):
    """What the loop needs of a source (collector/sources/ implements it)."""

    name: str

    def poll(self) -> list[Event]: ...

    def checkpoint(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class CredentialError(ValueError):
    """The credential file is missing or unusable: enroll first."""


def load_credentials(path: Path) -> dict[str, Any]:
    try:
        credential: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CredentialError(
            f"no agent credential at {path}: run `vigie agent enroll` first"
        ) from exc
    except (OSError, ValueError) as exc:
        raise CredentialError(f"cannot read the agent credential {path}: {exc}") from exc
    for key in ("server", "agent_key"):
        if not credential.get(key):
            raise CredentialError(f"{path} has no {key}: enroll again")
    return credential


def check_transport(config: AgentConfig, credential: dict[str, Any]) -> None:
    """Refuse plain http:// off this machine unless the credential or configuration allows it."""
    allowed = config.allow_http or credential.get("allow_http") is True
    refusal = plain_http_refusal(str(credential["server"]), allowed)
    if refusal is not None:
        raise CredentialError(refusal)


def version() -> str:
    try:
        return metadata.version("vigie")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass
class Detector:
    """Vigie's own Sigma and YARA rules plus the bundle's rules and indicators.

    The bundle's rule texts are written as files under the state folder and loaded with the
    own rules, each YARA text on its own (its own namespace), so that a text that does not
    compile is skipped, counted in `skipped` and reported with its alert, and the rest load.
    Correlation state lives in `correlator` across turns (a window's events may come in
    several polls) and is carried over a reload for the correlation rules left unchanged.
    """

    own_rules: Path | None
    state_dir: Path
    own_yara: Path | None = None
    yara_wanted: bool = False  # only an agent with folders to scan compiles YARA rules
    engine: SigmaEngine | None = None
    correlator: Correlator | None = None
    indicators: IndicatorMatcher | None = None
    yara: YaraRuleSet | None = None
    bundle_version: int | None = None
    # Rule files of the rules in force that did not load (a bundle's are in these counts).
    skipped: dict[str, int] = field(default_factory=lambda: {"sigma": 0, "yara": 0})
    errors: list[str] = field(default_factory=list)

    def load(self, bundle: dict[str, Any] | None) -> None:
        folder = self.state_dir / "bundle-rules"
        shutil.rmtree(folder, ignore_errors=True)
        self.errors = []
        refused = {"sigma": 0, "yara": 0}
        for kind, suffix in (("sigma", "yml"), ("yara", "yar")):
            (folder / kind).mkdir(parents=True)
            for index, (alert_id, text) in enumerate(rule_texts(bundle, kind)):
                problem = _refused_text(kind, text)
                if problem is not None:
                    # Checked here too, not only at publication: a bundle signed before the
                    # service checked (an alert published by an older version) must not cost
                    # every agent an alias bomb's gigabytes.
                    log.warning(
                        "bundle %s rule %d of alert %s refused: %s", kind, index, alert_id, problem
                    )
                    self.errors.append(f"{kind}: alert {alert_id} rule {index}: {problem}")
                    refused[kind] += 1
                    continue
                name = f"{index:04d}-{_file_safe(alert_id)}.{suffix}"
                (folder / kind / name).write_text(text, encoding="utf-8")
        paths = [p for p in (self.own_rules, folder / "sigma") if p is not None and p.is_dir()]
        cache = self.state_dir / "cache"
        ruleset = load_sigma_rules(paths, cache_dir=cache / "sigma") if paths else SigmaRuleSet()
        for error in ruleset.errors:
            log.warning("Sigma rule skipped: %s", error)
            self.errors.append(f"sigma: {error}")
        self.skipped["sigma"] = len({e.path for e in ruleset.errors}) + refused["sigma"]
        engine = SigmaEngine(ruleset) if ruleset.rules else None
        self.correlator = _carried_over(self.correlator, engine)
        self.engine = engine
        if self.yara_wanted:
            folders = [p for p in (self.own_yara, folder / "yara") if p is not None and p.is_dir()]
            self.yara = load_yara_rules(folders, cache_dir=cache / "yara")
            for yara_error in self.yara.errors:
                log.warning("YARA rule skipped: %s", yara_error)
                self.errors.append(f"yara: {yara_error}")
            self.skipped["yara"] = len(self.yara.errors) + refused["yara"]
        self.indicators = indicator_matcher(bundle)
        self.bundle_version = bundle.get("version") if bundle else None

    def detect(self, events: list[Event]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        engine, correlator = self.engine, self.correlator
        if engine is not None:
            # Correlation windows want time order; within a turn sources are interleaved.
            for event in sorted(events, key=_time_order):
                found.extend(d.to_dict() for d in engine.match(event, correlator))
        if self.indicators is not None:
            found.extend(self.indicators.match(events))
        for detection in found:
            detection["origin"] = "agent"
        return found


def _carried_over(previous: Correlator | None, engine: SigmaEngine | None) -> Correlator | None:
    """A correlator for `engine`, keeping the open windows of the correlations unchanged."""
    if engine is None or not engine.ruleset.correlations:
        return None
    correlator = Correlator(engine)
    if previous is not None:
        kept = {state.rule.id: state for state in previous.states}
        for n, state in enumerate(correlator.states):
            old = kept.get(state.rule.id)
            if old is not None and old.rule == state.rule:
                correlator.states[n] = old
    return correlator


def _time_order(event: Event) -> datetime:
    moment = event.timestamp
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _refused_text(kind: str, text: str) -> str | None:
    """Why a bundle's rule text is not even parsed (None: it may be): over the size bound, or,
    for Sigma, YAML with anchors or aliases, or beyond the depth and count bounds."""
    try:
        if kind == "sigma":
            check_plain_yaml(text)
        else:
            check_size(text)
    except YamlRefused as exc:
        return str(exc)
    except yaml.YAMLError as exc:
        return f"not YAML: {str(exc).splitlines()[0]}"
    return None


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "alert"


@dataclass
class AgentRunner:
    config: AgentConfig
    sources: Sequence[Source]
    credential: dict[str, Any]
    spool: Spool = field(init=False)
    client: httpx.Client = field(init=False)
    shipper: Shipper = field(init=False)
    bundles: BundleStore | None = field(init=False, default=None)
    detector: Detector = field(init=False)
    privacy: PrivacyFilter = field(init=False)
    files: FolderScanner | None = field(init=False, default=None)
    revoked: str | None = None
    # Handed from the delivering thread to the collecting one: a bundle fetched, to load.
    _bundle_fetched: threading.Event = field(init=False, default_factory=threading.Event)
    # Taken by the collecting thread for the delivering one's heartbeat (None: take them now).
    _report: dict[str, Any] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        delivery = self.config.delivery
        check_transport(self.config, self.credential)
        self.spool = Spool(self.config.state_dir)
        self.client = httpx.Client(
            base_url=self.credential["server"],
            headers={"Authorization": f"Bearer {self.credential['agent_key']}"},
            timeout=30,
        )
        self.shipper = Shipper(
            self.client, self.spool, delivery.batch_events, Backoff(delivery.max_backoff_seconds)
        )
        key = self.credential.get("bundle_key")
        if key:
            # Credentials from before the FINESS was kept: asked of the service (/agents/me)
            # by the delivering thread; no bundle is accepted until then.
            establishment = self.credential.get("establishment")
            self.bundles = BundleStore(
                self.config.state_dir, str(key), str(establishment) if establishment else None
            )
        else:
            log.warning("no pinned bundle key in the credential: bundles are not fetched")
        for source in self.sources:
            state = self.spool.checkpoint(source.name)
            if state is not None:
                source.restore(state)
        self.privacy = PrivacyFilter(load_key(self.config.state_dir), self.config.sensitive_fields)
        own = self.config.rules_dir or REPO_RULES
        self.detector = Detector(
            own,
            self.config.state_dir,
            own_yara=own.parent / "yara",
            yara_wanted=bool(self.config.scan_folders),
        )
        self.detector.load(self.bundles.current() if self.bundles else None)
        yara = self.detector.yara  # compiled when there are folders to scan
        self.files = self._folder_scanner(yara) if yara is not None else None

    # --- one turn ---------------------------------------------------------------------------

    def collect(self, sources: Sequence[Source] | None = None) -> int:
        """Poll every source (or those given) once; spool what came, with the sources'
        checkpoints."""
        events: list[Event] = []
        checkpoints = {}
        for source in self.sources if sources is None else sources:
            try:
                found = source.poll()
            except Exception:  # one broken source must not stop the others
                log.exception("source %s failed; it is polled again next turn", source.name)
                continue
            # Patient data goes before anything else sees the events: detection, spool, ship.
            events.extend(
                Event(e.timestamp, self.privacy.clean(e.fields), e.source, e.establishment, e.agent)
                for e in found
            )
            checkpoints[source.name] = source.checkpoint()
        detections = self.detector.detect(events) if events else []
        if self.files is not None:
            for hit in self.files.poll():
                original = hit.get("file")
                if isinstance(original, str):
                    hidden = self.privacy.path(original, self.config.scan_folders)
                    for key in ("file", "source"):  # the path is in both
                        if hit.get(key) == original:
                            hit[key] = hidden
                hit["origin"] = "agent"
                detections.append(hit)
        budget = int(self.config.delivery.disk_budget_mb * 2**20)
        dropped = self.spool.put_within(
            budget, (e.to_ecs() for e in events), detections, checkpoints
        )
        if dropped:
            log.warning("disk budget reached: %d oldest item(s) dropped", dropped)
        return len(events)

    def _folder_scanner(self, rules: YaraRuleSet) -> FolderScanner:
        return FolderScanner(
            list(self.config.scan_folders),
            rules,
            self.config.state_dir,
            cpu_share=self.config.scan_cpu_share,
            full_pass_hours=self.config.scan_full_pass_hours,
        )

    def take_report(self) -> dict[str, Any]:
        """What the heartbeat says of the collecting side, taken in the collecting thread."""
        self._report = {
            "sources": [
                {
                    "name": s.name[:120],
                    "kind": s.name.split(":", 1)[0][:40],
                    "lag_seconds": s.stats().get("lag_seconds"),
                }
                for s in self.sources
            ],
            "counters": {
                "pseudonymised": self.privacy.pseudonymised,
                "sigma_rules_skipped": self.detector.skipped["sigma"],
                "yara_rules_skipped": self.detector.skipped["yara"],
                **({f"files_{k}": v for k, v in self.files.counters.items()} if self.files else {}),
            },
        }
        return self._report

    def heartbeat(self) -> None:
        stats = self.spool.stats()
        report = self._report or self.take_report()
        body = {
            "version": version(),
            "sources": report["sources"],
            "counters": {
                **{k: v for k, v in stats.items() if isinstance(v, int)},
                **report["counters"],
                "bundles_refused": self.bundles.refused if self.bundles else 0,
            },
        }
        try:
            answer = self.client.post("/agents/heartbeat", json=body)
        except httpx.HTTPError as exc:
            log.warning("heartbeat not sent: %s", exc or type(exc).__name__)
            return
        if answer.status_code == 401:
            self.revoked = answer.text[:200]

    def update_bundle(self) -> None:
        """Fetch a bundle and put it in force (both halves, for a caller in one thread)."""
        self.fetch_bundle()
        self.apply_bundle()

    def fetch_bundle(self) -> None:
        """Delivering thread: fetch, verify and keep a newer bundle; the collecting thread
        puts it in force at its next turn."""
        if self.bundles is None:
            return
        if self.bundles.establishment is None and not self._ask_establishment():
            return
        if self.bundles.fetch(self.client):
            self._bundle_fetched.set()

    def _ask_establishment(self) -> bool:
        """The agent's establishment from the service, for a credential without it."""
        assert self.bundles is not None
        try:
            answer = self.client.get("/agents/me")
            finess = answer.raise_for_status().json()["establishment"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("this agent's establishment is not known yet (/agents/me: %s)", exc)
            return False
        self.bundles.establishment = str(finess)
        self._bundle_fetched.set()  # the kept bundle can be checked, and used, now
        return True

    def apply_bundle(self) -> None:
        """Collecting thread: load the bundle fetched, if any."""
        if self.bundles is None or not self._bundle_fetched.is_set():
            return
        self._bundle_fetched.clear()
        # The rules replaced may hold reference cycles: collectable only once unfrozen (`run`
        # froze what was loaded).
        frozen = gc.get_freeze_count() > 0
        gc.unfreeze()
        self.detector.load(self.bundles.current())
        if frozen:
            gc.collect()
            gc.freeze()
        if self.files is not None and self.detector.yara is not None:
            self.files.use_rules(self.detector.yara)
        log.info("bundle version %s in force", self.detector.bundle_version)

    def write_status(self) -> None:
        status = {
            "at": time.time(),
            "pid": os.getpid(),
            "server": self.credential["server"],
            "agent_id": self.credential.get("agent_id"),
            "spool": self.spool.stats(),
            "last_error": self.shipper.last_error,
            "revoked": self.revoked,
            "bundle_version": self.detector.bundle_version,
            "bundles_refused": self.bundles.refused if self.bundles else 0,
            "bundle_refusal": self.bundles.last_refusal if self.bundles else None,
            "rules_skipped": dict(self.detector.skipped),
            "rule_errors": self.detector.errors[:20],
            "sources": {s.name: s.stats() for s in self.sources},
            "files": self.files.stats() if self.files else None,
        }
        write_atomically(
            self.config.state_dir / STATUS_FILE, json.dumps(status, indent=2, default=str)
        )

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Collect in this thread and deliver in another until `stop` is set."""
        done = threading.Event()  # the collecting side has ended: delivery ends too
        delivery = threading.Thread(
            target=self._deliver, args=(stop, done), name="vigie-delivery", daemon=True
        )
        # The sources' figures for the first heartbeat, taken here: once delivery runs, only
        # the collecting thread may touch the sources.
        self.take_report()
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION, *thresholds[1:])
        gc.freeze()  # what is loaded by now (rules, libraries) lives as long as the agent
        delivery.start()
        try:
            self._collect_loop(stop)
        finally:
            gc.unfreeze()
            gc.set_threshold(*thresholds)
            done.set()
            # A request in flight to a hung service is not waited for beyond this: its batch
            # stays pending in the spool and goes again (same id) at the next start.
            delivery.join(timeout=self.config.delivery.stop_seconds)
            if delivery.is_alive():
                log.warning("delivery still waiting on the service at stop: left behind")
            self.write_status()
            for source in self.sources:
                source.close()
            self._collect_closed()
            if not delivery.is_alive():
                self.client.close()
                self.spool.close()

    def _collect_loop(self, stop: threading.Event) -> None:
        delivery = self.config.delivery
        next_status = 0.0
        while not stop.is_set():
            read = self.collect()
            self.apply_bundle()
            self.take_report()
            now = time.monotonic()
            if now >= next_status:
                self.write_status()
                next_status = now + 2.0
            # A turn per poll interval: events go to disk in a few writes a second, not one
            # per line; a backlog is read without waiting.
            if read < delivery.batch_events:
                stop.wait(delivery.poll_seconds)

    def _deliver(self, stop: threading.Event, done: threading.Event) -> None:
        delivery = self.config.delivery
        next_ship = next_beat = next_bundle = 0.0
        while not (stop.is_set() or done.is_set()):
            now = time.monotonic()
            try:
                if now >= next_ship and self.revoked is None:
                    delay = self._ship()
                    next_ship = now + delay if delay is not None else now
                if now >= next_beat:
                    self.heartbeat()
                    next_beat = now + delivery.heartbeat_seconds
                if now >= next_bundle:
                    self.fetch_bundle()
                    next_bundle = now + delivery.bundle_seconds
            except Exception:  # one failed step must not end delivery: reported, tried again
                log.exception("delivery step failed; tried again")
                next_ship = now + delivery.poll_seconds
            stop.wait(delivery.poll_seconds)

    def _ship(self) -> float | None:
        try:
            return self.shipper.ship()
        except AgentRevoked as exc:
            self.revoked = str(exc)
            log.error("%s: events keep being spooled; enroll again", exc)
            return None

    def _collect_closed(self) -> None:
        """A last turn for what closing ended: a live capture's open connections become
        records when it closes (collector/sources/live.py); the spool is still open."""
        flushing = [s for s in self.sources if getattr(s, "records_on_close", False)]
        if not flushing:
            return
        try:
            self.collect(flushing)
        except Exception:  # stopping anyway: report, and close the rest
            log.exception("the connections open at shutdown could not be spooled")


def build_sources(config: AgentConfig) -> list[Source]:
    """The sources the configuration lists (collector/sources/)."""
    sources: list[Source] = []
    for index, spec in enumerate(config.sources):
        kind = spec["kind"]
        try:
            if kind == "tail":
                from collector.sources.tail import FileTail

                sources.append(FileTail([str(p) for p in spec["paths"]]))
            elif kind == "syslog":
                from collector.sources.syslog_listener import SyslogListener

                sources.append(
                    SyslogListener(
                        str(spec.get("host", "0.0.0.0")),  # noqa: S104 - a listener's choice
                        int(spec.get("udp_port", 514)),
                        int(spec.get("tcp_port", 514)),
                    )
                )
            elif kind == "pcap":
                from collector.sources.pcap import PcapFolder

                sources.append(PcapFolder(Path(spec["folder"]).expanduser()))
            elif kind == "live":
                from collector.sources.live import LiveCapture

                # CaptureError (an OSError: `vigie agent run` reports it in one line), e.g.
                # "live capture on eth0 needs root or CAP_NET_RAW".
                sources.append(LiveCapture(str(spec["interface"]), spec.get("filter") or None))
            else:
                from collector.sources.winlog import WatchedFolder

                sources.append(WatchedFolder(Path(spec["folder"]).expanduser()))
        except KeyError as exc:
            _close_all(sources)
            raise ValueError(f"sources[{index}] ({kind}) needs {exc.args[0]!r}") from exc
        except Exception:  # the ones started (listener threads, capture sockets) stop
            _close_all(sources)
            raise
    return sources


def _close_all(sources: list[Source]) -> None:
    for source in sources:
        try:
            source.close()
        except Exception:  # already failing: the first error is the one to report
            log.exception("closing source %s", source.name)
