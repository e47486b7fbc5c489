"""`vigie report`: the signed audit-log extract made from the database on the server, and the
checks of an extract (anyone holding one) and of the live log's hash chain."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.common import fail


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report", help="auditor reports: maturity, statistics, registry, alert acks, audit log"
    )
    sub = parser.add_subparsers(dest="report_command", required=True, metavar="ACTION")

    extract = sub.add_parser("audit-log", help="write the audit log over a range as a signed ZIP")
    extract.add_argument("--output", type=Path, required=True, metavar="FILE")
    extract.add_argument("--since", type=_time, help="from this time (included), ISO 8601")
    extract.add_argument("--until", type=_time, help="until this time (excluded), ISO 8601")
    extract.add_argument("--actor", help="one account's entries only")
    extract.add_argument("--action", help="read, update, login...")
    extract.add_argument("--kind", help="incident, alert, user...")
    _database_options(extract)
    extract.set_defaults(run=run_extract)

    verify = sub.add_parser(
        "verify", help="check an extract: signature, the CSV's sha256, the chain row by row"
    )
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="PEMFILE",
        help="the service's report key (default: the key the extract carries)",
    )
    verify.set_defaults(run=run_verify)

    live = sub.add_parser("verify-chain", help="check the hash chain of the live audit log")
    _database_options(live)
    live.set_defaults(run=run_verify_chain)

    from api.reports.catalogue import KINDS

    for kind in KINDS.values():
        one = sub.add_parser(kind.name, help=f"{kind.title} ({', '.join(kind.formats)})")
        one.add_argument("--output", type=Path, required=True, metavar="FILE")
        one.add_argument("--format", choices=kind.formats, default=kind.formats[0])
        one.add_argument(
            "--as-of",
            type=_time,
            default=None,
            help="the moment reported on, ISO 8601 (default: now); the same gives the same bytes",
        )
        if kind.finess != "no":
            one.add_argument("--finess", required=kind.finess == "required")
        if kind.region:
            one.add_argument("--region", help="one region only (its name, as the service has it)")
        one.add_argument(
            "--keep", action="store_true", help="also keep it in the data directory's reports/"
        )
        _database_options(one)
        one.set_defaults(run=run_report, kind=kind.name)


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $VIGIE_DATA_DIR or ./vigie-data"
    )
    parser.add_argument(
        "--database-url", default=None, help="default: $VIGIE_DATABASE_URL or the data dir's SQLite"
    )


def _time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _where(args: argparse.Namespace) -> tuple[Path, str]:
    """The data directory and the database, as `vigie serve` finds them (api/settings.py)."""
    folder = Path(args.data_dir or os.environ.get("VIGIE_DATA_DIR") or "vigie-data").resolve()
    url = args.database_url or os.environ.get("VIGIE_DATABASE_URL")
    if not url:
        database = folder / "vigie.db"
        if not database.exists():
            raise FileNotFoundError(f"no database at {database} (give --data-dir)")
        url = f"sqlite:///{database}"
    return folder, url


def run_extract(args: argparse.Namespace) -> int:
    import getpass

    from api.audit.routes import AuditFilter
    from api.audit.service import _add
    from api.datadir import private_files
    from api.db import make_engine, session_factory, transaction
    from api.reports import auditlog
    from api.reports.signing import ReportSigner

    if args.since and args.until and args.since >= args.until:
        return fail("--since must come before --until")
    try:
        folder, url = _where(args)
    except FileNotFoundError as exc:
        return fail(str(exc))
    found = AuditFilter(
        actor=args.actor, action=args.action, kind=args.kind, since=args.since, until=args.until
    )
    engine = make_engine(url)
    try:
        with private_files():  # the report key, if this makes it
            signer = ReportSigner.in_data_dir(folder)
        with transaction(session_factory(engine)) as session, args.output.open("wb") as out:
            m = auditlog.build(session, found, signer, out)
            # Who took it from the server is in the log too, as a download through the API is.
            span = f"{m['first_id']}-{m['last_id']} rows={m['rows']} sha256={m['csv']['sha256']}"
            who = f"cli:{getpass.getuser()}"
            _add(session, who, "admin", "download", "audit", str(found) or "all", None, span)
    except OSError as exc:
        return fail(str(exc))
    finally:
        engine.dispose()
    print(f"{args.output}: {m['rows']} rows, ids {m['first_id']} to {m['last_id']}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    import getpass

    from api.audit.service import _add
    from api.db import make_engine, session_factory, transaction
    from api.errors import VigieServiceError
    from api.reports import catalogue, runs

    try:
        folder, url = _where(args)
    except FileNotFoundError as exc:
        return fail(str(exc))
    now = datetime.now(UTC)
    as_of = args.as_of or now
    if as_of > now:
        return fail("--as-of is in the future: a report says what was, not what will be")
    engine = make_engine(url)
    who = f"cli:{getpass.getuser()}"
    try:
        params = catalogue.checked(
            args.kind,
            args.format,
            as_of,
            getattr(args, "finess", None),
            getattr(args, "region", None),
        )
        with transaction(session_factory(engine)) as session:
            made = runs.make(session, params, trigger=who, data_dir=folder if args.keep else None)
            run = made.run
            said = " ".join(f"{k}={v}" for k, v in run.params.items())
            _add(session, who, "admin", "download", "report", args.kind, None,
                 f"run={run.id} {said} sha256={run.sha256}")  # fmt: skip
            with made.file, args.output.open("wb") as out:
                while chunk := made.file.read(1 << 20):
                    out.write(chunk)
    except (VigieServiceError, OSError) as exc:
        return fail(str(exc))
    finally:
        engine.dispose()
    kept = f", kept as {run.path}" if run.path else ""
    print(f"{args.output}: {run.size} bytes, sha256 {run.sha256}{kept}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from api.reports import auditlog

    try:
        data = args.file.read_bytes()
        pinned = auditlog.load_public_key(args.public_key.read_bytes()) if args.public_key else None
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    verdict = auditlog.verify(data, pinned)
    if verdict.ok:
        print(f"{args.file}: OK, {verdict.rows} rows, signature checked with {verdict.key}")
        return 0
    print(f"{args.file}: NOT VALID, {len(verdict.problems)} problem(s):")
    for problem in verdict.problems:
        print(f"  {problem}")
    return 1


def run_verify_chain(args: argparse.Namespace) -> int:
    from api.audit import chain
    from api.db import make_engine, session_factory, transaction

    try:
        _, url = _where(args)
    except FileNotFoundError as exc:
        return fail(str(exc))
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            breaks = list(chain.check_table(session))
    finally:
        engine.dispose()
    if not breaks:
        print("audit log: chain OK")
        return 0
    print(f"audit log: chain BROKEN, {len(breaks)} problem(s):")
    for found in breaks:
        print(f"  row {found.row_id}: {found.reason}")
    return 1
