"""`vigie agent enroll | run | status`: the collector agent.

`enroll` trades an enrollment token for an agent credential and pins the key that signs the
service's rule bundles: the key of the enrollment answer (the token proves that exchange), or
of /alerts/bundle/public-key when it matches `--bundle-key-id` (an older service); with
`--bundle-key-id` the enrollment is refused when the service's key is another. Plain http://
to a service off this machine is refused unless `--allow-http`. `run` runs the agent with its
TOML configuration; `status` says what the agent has spooled, shipped, dropped, and what went
wrong last.

The agent talks to the national service over HTTP only (it imports nothing from `api/`). The
credential lands in a JSON file readable by its owner only (0600, in a 0700 folder), written
atomically, and an existing file is never overwritten without `--force`: its key would be lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cli.common import fail

log = logging.getLogger("vigie.agent")
DEFAULT_CONFIG = Path("~/.config/vigie/agent.json")
TOKEN_ENV = "VIGIE_ENROLLMENT_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("agent", help="the collector agent: enroll, run, status")
    sub = parser.add_subparsers(dest="agent_command", required=True, metavar="ACTION")

    enroll = sub.add_parser("enroll", help="enroll this machine with the national service")
    enroll.add_argument("--server", required=True, help="the national service, e.g. https://...")
    enroll.add_argument(
        "--token",
        default=None,
        help=f"enrollment token given by the establishment (or ${TOKEN_ENV}, kept out of `ps`)",
    )
    enroll.add_argument("--hostname", default=None, help="default: this machine's name")
    enroll.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="a source this agent reads (repeatable), reported to the service",
    )
    enroll.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"default: {DEFAULT_CONFIG}"
    )
    enroll.add_argument("--force", action="store_true", help="replace an existing credential file")
    enroll.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    enroll.add_argument(
        "--bundle-key-id",
        default=None,
        metavar="KEYID",
        help="the id of the service's bundle signing key, given by its operators: the "
        "enrollment is refused if the service shows another",
    )
    enroll.add_argument(
        "--allow-http",
        action="store_true",
        help="allow plain http:// to a service off this machine (the key crosses in clear)",
    )
    enroll.set_defaults(run=run_enroll)

    run = sub.add_parser("run", help="run the agent (until SIGTERM or Ctrl-C)")
    run.add_argument("--config", type=Path, required=True, help="the agent's TOML file")
    run.set_defaults(run=run_agent)

    status = sub.add_parser("status", help="what the agent has spooled, shipped and dropped")
    status.add_argument("--config", type=Path, required=True, help="the agent's TOML file")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(run=run_status)

    reveal = sub.add_parser(
        "reveal", help="the local files and folders behind pseudonymised path tokens"
    )
    reveal.add_argument("--config", type=Path, required=True, help="the agent's TOML file")
    reveal.add_argument("tokens", nargs="+", metavar="TOKEN", help="pseudo:... or a whole path")
    reveal.set_defaults(run=run_reveal)

    token = sub.add_parser("token", help="the pseudonymisation token of a value, to search for")
    token.add_argument("--config", type=Path, required=True, help="the agent's TOML file")
    token.add_argument("values", nargs="+", metavar="VALUE")
    token.set_defaults(run=run_token)


def _version() -> str:
    try:
        return metadata.version("vigie")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _refusal(answer: Any) -> str:
    """One line from an error answer: `status code: detail`."""
    try:
        body = answer.json()
    except ValueError:
        return f"{answer.status_code}: {answer.text.strip()[:200] or answer.reason_phrase}"
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # request validation: where and why, for each field
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    code = body.get("code") if isinstance(body, dict) else None
    return f"{answer.status_code}{f' {code}' if code else ''}: {detail}"


_KEY_ID = re.compile(r"[0-9a-f]{16}")


def _public_key(server: str, timeout: float) -> tuple[str, str] | str:
    """(key, key id computed here) of /alerts/bundle/public-key, or why there is none."""
    import httpx

    from detection.bundle import BundleError, key_id, public_key_from, raw_public_key

    try:
        answer = httpx.get(f"{server}/alerts/bundle/public-key", timeout=timeout)
        key = str(answer.raise_for_status().json()["public_key"])
        return key, key_id(raw_public_key(public_key_from(key)))
    except (httpx.HTTPError, ValueError, KeyError, TypeError, BundleError) as exc:
        return f"{exc or type(exc).__name__}"


def _pinned_key(agent: dict[str, Any], server: str, wanted: str | None, timeout: float) -> str:
    """The bundle key to pin ("" for none, "refused: why" when it is not the one wanted).

    The enrollment answer's key is bound to the token's exchange; the public endpoint's is
    taken only when it matches `--bundle-key-id` (a service older than that answer)."""
    from detection.bundle import BundleError, key_id, public_key_from, raw_public_key

    given = agent.get("bundle_key")
    if isinstance(given, str) and given:
        try:
            kid = key_id(raw_public_key(public_key_from(given)))
        except BundleError as exc:
            return f"refused: the enrollment answer's bundle key is unusable ({exc})"
        if wanted is not None and kid != wanted:
            return f"refused: the service signs bundles with key {kid}, not {wanted}"
        return given
    if wanted is None:
        log.warning(
            "%s gave no bundle key with the enrollment: none pinned, bundles are not fetched "
            "(enroll again with --bundle-key-id, the key_id of /alerts/bundle/public-key)",
            server,
        )
        return ""
    shown = _public_key(server, timeout)
    if isinstance(shown, str):
        return f"refused: cannot read the bundle key to check it ({shown})"
    if shown[1] != wanted:
        return f"refused: the service signs bundles with key {shown[1]}, not {wanted}"
    return shown[0]


def _write_private(path: Path, content: dict[str, Any]) -> None:
    """Write `content` as JSON to `path`, mode 0600, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".agent-", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_enroll(args: argparse.Namespace) -> int:
    import httpx

    from collector.config import plain_http_refusal

    server = args.server.rstrip("/")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return fail(f"--server {args.server!r} is not an http:// or https:// URL")
    refusal = plain_http_refusal(server, args.allow_http)
    if refusal is not None:
        return fail(refusal)
    wanted = args.bundle_key_id.strip().lower() if args.bundle_key_id else None
    if wanted is not None and not _KEY_ID.fullmatch(wanted):
        return fail(f"--bundle-key-id {args.bundle_key_id!r} is not a key id (16 hex digits)")
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        return fail(f"no enrollment token: give --token or set {TOKEN_ENV}")
    config = args.config.expanduser()
    if config.is_dir():
        return fail(f"{config} is a folder, not a file")
    if config.exists() and not args.force:
        return fail(f"{config} already holds an agent credential (use --force to replace it)")
    if wanted is not None:  # checked before the token is spent, and again on the answer
        shown = _public_key(server, args.timeout)
        if isinstance(shown, tuple) and shown[1] != wanted:
            return fail(
                f"{server} signs bundles with key {shown[1]}, not {wanted} (--bundle-key-id): "
                "not enrolled"
            )
    hostname = args.hostname or socket.gethostname()
    request = {"token": token, "hostname": hostname, "version": _version(), "sources": args.source}
    try:
        answer = httpx.post(f"{server}/agents/enroll", json=request, timeout=args.timeout)
    except httpx.HTTPError as exc:
        return fail(f"cannot reach {server}: {exc or type(exc).__name__}")
    if answer.status_code != 201:
        return fail(f"enrollment refused by {server}: {_refusal(answer)}", status=1)
    try:
        agent = answer.json()
        credential = {
            "server": server,
            "agent_id": agent["id"],
            "establishment": agent["establishment"],
            "hostname": agent["hostname"],
            "agent_key": agent["agent_key"],
            "enrolled_at": agent["enrolled_at"],
        }
    except (ValueError, KeyError, TypeError) as exc:
        return fail(f"{server} answered the enrollment with something else than an agent: {exc}")
    if parts.scheme == "http" and args.allow_http:
        credential["allow_http"] = True
    pinned = _pinned_key(agent, server, wanted, args.timeout)
    if pinned.startswith("refused: "):
        # The token is spent and the agent exists on the service: say which one to revoke.
        return fail(f"{pinned[9:]}: credential not written; revoke agent {agent['id']}")
    if pinned:
        credential["bundle_key"] = pinned
    try:
        _write_private(config, credential)
    except OSError as exc:
        # The token is spent and the agent exists on the service: say which one to revoke.
        return fail(f"enrolled as agent {agent['id']} but cannot write {config}: {exc}")
    print(
        f"enrolled agent {agent['id']} for establishment {agent['establishment']}; "
        f"credential in {config}"
    )
    return 0


def run_agent(args: argparse.Namespace) -> int:
    import signal
    import threading

    from collector.config import AgentConfig, ConfigError
    from collector.runner import (
        AgentRunner,
        CredentialError,
        build_sources,
        check_transport,
        load_credentials,
    )

    try:
        config = AgentConfig.load(args.config)
        credential = load_credentials(config.credentials)
        check_transport(config, credential)  # before any source starts
        sources = build_sources(config)
    except (ConfigError, CredentialError, OSError, ValueError) as exc:
        return fail(str(exc))
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    runner = AgentRunner(config, sources, credential)
    log.info("agent running: %d source(s), state in %s", len(sources), config.state_dir)
    runner.run(stop)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from collector.config import AgentConfig, ConfigError
    from collector.runner import STATUS_FILE
    from collector.spool import Spool

    try:
        config = AgentConfig.load(args.config)
    except ConfigError as exc:
        return fail(str(exc))
    status: dict[str, Any] = {}
    try:
        status = json.loads((config.state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = {"note": "the agent has not run yet"}
    if (config.state_dir / "spool.db").exists():
        spool = Spool(config.state_dir)
        try:
            status["spool"] = spool.stats()  # fresher than the status file
        finally:
            spool.close()
    if args.format == "json":
        print(json.dumps(status, indent=2, default=str))
        return 0
    spool_stats = status.get("spool", {})
    print(f"server: {status.get('server', '?')}  agent: {status.get('agent_id', '?')}")
    print(
        "spool: {queued} queued ({queued_bytes} bytes), {received} received, {shipped} shipped, "
        "{dropped} dropped, {refused} refused".format(
            **{
                k: spool_stats.get(k, 0)
                for k in ("queued", "queued_bytes", "received", "shipped", "dropped", "refused")
            }
        )
    )
    refused = status.get("bundles_refused", 0)
    print(f"bundle: version {status.get('bundle_version')}, refused {refused}")
    if status.get("bundle_refusal"):
        print(f"last bundle refused: {status['bundle_refusal']}")
    if status.get("revoked"):
        print(f"REVOKED: {status['revoked']}")
    if status.get("last_error"):
        print(f"last error: {status['last_error']}")
    for name, stats in (status.get("sources") or {}).items():
        print(f"source {name}: {stats}")
    return 0


def _local_privacy(config_path: Path) -> tuple[Any, Any] | str:
    """The agent's configuration and privacy filter, or why there is none. Only on the agent's
    own machine: the key never leaves its state folder."""
    from collector.config import AgentConfig, ConfigError
    from collector.privacy import KEY_FILE, PrivacyFilter

    try:
        config = AgentConfig.load(config_path)
        key = (config.state_dir / KEY_FILE).read_bytes()
    except ConfigError as exc:
        return str(exc)
    except OSError as exc:
        return f"no pseudonymisation key in the agent's state folder ({exc.strerror})"
    return config, PrivacyFilter(key, config.sensitive_fields)


def run_reveal(args: argparse.Namespace) -> int:
    loaded = _local_privacy(args.config)
    if isinstance(loaded, str):
        return fail(loaded)
    config, privacy = loaded
    if not config.scan_folders:
        return fail("the configuration names no [files] folders: path tokens come only from them")
    found = privacy.reveal(args.tokens, config.scan_folders)
    if not found:
        return fail("no pseudo:... token in the arguments")
    for token, paths in found.items():
        for path in paths:
            print(f"{token}\t{path}")
        if not paths:
            print(f"{token}\t(not found: renamed or removed since)")
    return 0 if any(found.values()) else 1


def run_token(args: argparse.Namespace) -> int:
    loaded = _local_privacy(args.config)
    if isinstance(loaded, str):
        return fail(loaded)
    _, privacy = loaded
    for value in args.values:
        print(privacy.token(value))
    return 0
