"""The agent's configuration: one TOML file (the agent key stays in the credential file that
`vigie agent enroll` writes, mode 0600, which the configuration points to).

    state_dir = "/var/lib/vigie-agent"       # spool, checkpoints, last good bundle
    credentials = "~/.config/vigie/agent.json"
    allow_http = false          # plain http:// to a service off this machine (else refused)

    [delivery]
    batch_events = 1000         # events per batch at most
    disk_budget_mb = 512        # beyond it the oldest spooled data is dropped, and counted
    heartbeat_seconds = 60
    bundle_seconds = 300
    max_backoff_seconds = 300
    stop_seconds = 5            # at stop, how long an upload in flight is waited for

    [privacy]
    sensitive_fields = ["user.full_name"]   # pseudonymised (keyed hash) before spooling;
                                             # HL7 patient segments and DICOM patient
                                             # attributes always are

    [files]                     # YARA on these folders: new and changed files, and a full
    folders = ["/srv/partage"]  # pass every full_pass_hours, within cpu_share of one core
    cpu_share = 0.2
    full_pass_hours = 24

    [[sources]]
    kind = "tail"       # tail | syslog | winlog (folder) | pcap (folder of captures) | live
    paths = ["/var/log/nginx/*.log"]

    [[sources]]
    kind = "syslog"
    udp_port = 514
    tcp_port = 514

    [[sources]]
    kind = "live"               # network metadata captured on an interface: root or
    interface = "eth0"          # CAP_NET_RAW
    filter = "not port 22"      # optional, BPF (tcpdump's syntax)
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CREDENTIALS = Path("~/.config/vigie/agent.json")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Delivery:
    batch_events: int = 1000
    disk_budget_mb: float = 512.0
    heartbeat_seconds: float = 60.0
    bundle_seconds: float = 300.0
    max_backoff_seconds: float = 300.0
    poll_seconds: float = 0.5
    stop_seconds: float = 5.0  # at stop, how long a request in flight is waited for


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path
    credentials: Path = DEFAULT_CREDENTIALS
    delivery: Delivery = field(default_factory=Delivery)
    sources: tuple[dict[str, Any], ...] = ()
    rules_dir: Path | None = None  # Vigie's own Sigma rules (None: the installed ones)
    sensitive_fields: tuple[str, ...] = ()
    scan_folders: tuple[Path, ...] = ()
    scan_cpu_share: float = 0.2
    scan_full_pass_hours: float = 24.0
    allow_http: bool = False

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path = Path()) -> AgentConfig:
        unknown = set(raw) - {
            "state_dir", "credentials", "delivery", "sources", "rules_dir", "privacy", "files",
            "allow_http",
        }  # fmt: skip
        if unknown:
            raise ConfigError(f"unknown keys: {', '.join(sorted(unknown))}")
        if "state_dir" not in raw:
            raise ConfigError("state_dir is required (where the spool and checkpoints live)")
        delivery_raw = raw.get("delivery", {})
        if not isinstance(delivery_raw, dict):
            raise ConfigError("[delivery] is a table")
        known = set(Delivery.__dataclass_fields__)
        extra = set(delivery_raw) - known
        if extra:
            raise ConfigError(f"unknown [delivery] keys: {', '.join(sorted(extra))}")
        for key, value in delivery_raw.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"delivery.{key} must be a positive number, not {value!r}")
        sources = raw.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
            raise ConfigError("[[sources]] are tables")
        for index, source in enumerate(sources):
            if source.get("kind") not in ("tail", "syslog", "winlog", "pcap", "live"):
                raise ConfigError(
                    f"sources[{index}].kind must be tail, syslog, winlog, pcap or live, "
                    f"not {source.get('kind')!r}"
                )
            if source["kind"] == "live":
                _check_live(index, source)
        privacy = raw.get("privacy", {})
        fields = privacy.get("sensitive_fields", []) if isinstance(privacy, dict) else None
        if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
            raise ConfigError("privacy.sensitive_fields is a list of dotted field names")
        files = raw.get("files", {})
        if not isinstance(files, dict) or not isinstance(files.get("folders", []), list):
            raise ConfigError("[files] is a table whose folders is a list of paths")
        if not isinstance(raw.get("allow_http", False), bool):
            raise ConfigError("allow_http is true or false")
        share = files.get("cpu_share", 0.2)
        if not isinstance(share, int | float) or not 0 < share <= 1:
            raise ConfigError(f"files.cpu_share is a share of one core in (0, 1], not {share!r}")
        return cls(
            scan_folders=tuple(_path(f, base) for f in files.get("folders", [])),
            scan_cpu_share=float(share),
            scan_full_pass_hours=float(files.get("full_pass_hours", 24.0)),
            sensitive_fields=tuple(fields),
            state_dir=_path(raw["state_dir"], base),
            credentials=_path(raw.get("credentials", str(DEFAULT_CREDENTIALS)), base),
            delivery=Delivery(**delivery_raw),
            sources=tuple(sources),
            rules_dir=_path(raw["rules_dir"], base) if raw.get("rules_dir") else None,
            allow_http=raw.get("allow_http", False),
        )


def plain_http_refusal(server: str, allowed: bool) -> str | None:
    """Why the agent will not talk to `server`, if it will not: plain http:// off this machine
    (the agent key, events and rules would cross the network in clear) unless allowed."""
    parts = urlsplit(server)
    host = parts.hostname or ""
    if parts.scheme != "http" or allowed or _loopback(host):
        return None
    return (
        f"refusing plain http:// to {host}: the agent key, events and rules would cross the "
        "network in clear; use https:// (or allow it: `vigie agent enroll --allow-http`, "
        "allow_http = true in the agent's configuration)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def _check_live(index: int, source: dict[str, Any]) -> None:
    """A live capture names its interface; its filter, if any, is a BPF expression (libpcap
    checks it when the capture starts)."""
    interface = source.get("interface")
    if not isinstance(interface, str) or not interface:
        raise ConfigError(f'sources[{index}] (live) needs an interface name, e.g. "eth0"')
    if not isinstance(source.get("filter", ""), str):
        raise ConfigError(f"sources[{index}].filter is a BPF expression, as tcpdump takes")


def _path(value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"a path is a non-empty string, not {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
