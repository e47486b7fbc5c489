"""The audit-log extract: a ZIP that proves what the log held over a range.

- `audit-log.csv`: one row per entry in id order, `;` between cells, UTF-8 with its BOM (as
  the dashboard's CSVs, for a spreadsheet in France), columns `FIELDS` then prev_hash and
  row_hash. Cells hold the exact texts the chain hashes (api/audit/chain.py), so they are not
  escaped against spreadsheet formulas: the extract is evidence, to be checked, not edited.
- `manifest.json`: the filters, first and last id, row count, the CSV's sha256, `anchor` (the
  hash of the row just before the first one, from which the chain is checked), the Vigie
  version, `generated_at` (the `until` bound, else the last row's time: never the clock).
- `manifest.sig`: the Ed25519 signature of manifest.json in base64; `public-key.pem`: the key.

The same filters on the same rows give the same bytes: fixed ZIP times and modes, sorted JSON.
Filtering by actor, action or kind leaves rows that do not follow each other in the chain
(`consecutive: false`): each row's hash is still checked, the links between them cannot be.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import chain
from api.audit.models import AuditEntry
from api.audit.routes import AuditFilter
from api.reports.signing import ReportSigner
from detection.bundle import key_id

CSV_NAME = "audit-log.csv"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public-key.pem"
COLUMNS = (*chain.FIELDS, "prev_hash", "row_hash")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a ZIP can hold: no clock in the file


def build(session: Session, found: AuditFilter, signer: ReportSigner, out: IO[bytes]) -> Manifest:
    """Write the extract's ZIP to `out`, the CSV streamed into it row by row (a year of the log
    is never held whole); returns the manifest."""
    query = select(AuditEntry).where(*found.conditions()).order_by(AuditEntry.id)
    first: AuditEntry | None = None
    last: AuditEntry | None = None
    count = 0
    archive = zipfile.ZipFile(out, "w")
    with archive:
        digest = hashlib.sha256()
        with archive.open(_entry(CSV_NAME), "w", force_zip64=True) as member:
            text = io.StringIO()
            writer = csv.writer(text, delimiter=";", lineterminator="\r\n")

            def emit(cells: list[str | None], prefix: bytes = b"") -> None:
                writer.writerow(cells)
                data = prefix + text.getvalue().encode()
                text.seek(0)
                text.truncate()
                digest.update(data)
                member.write(data)

            emit(list(COLUMNS), "\ufeff".encode())  # UTF-8 with its BOM
            for entry in session.scalars(query.execution_options(yield_per=1000)):
                emit([*chain.texts(entry), entry.prev_hash, entry.row_hash])
                first = first or entry
                last = entry
                count += 1
        manifest = _manifest(session, found, signer, first, last, count, digest.hexdigest())
        document = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True)
        signed = document.encode() + b"\n"
        archive.writestr(_entry(MANIFEST), signed)
        archive.writestr(_entry(SIGNATURE), signer.sign(signed))
        archive.writestr(_entry(PUBLIC_KEY), signer.public_pem())
    return manifest


Manifest = dict[str, Any]


def _manifest(
    session: Session,
    found: AuditFilter,
    signer: ReportSigner,
    first: AuditEntry | None,
    last: AuditEntry | None,
    count: int,
    csv_sha256: str,
) -> Manifest:
    anchor = None
    if first is not None:
        before = select(AuditEntry.row_hash).where(AuditEntry.id < first.id)
        anchor = session.scalar(before.order_by(AuditEntry.id.desc()).limit(1)) or chain.GENESIS
    if found.until is not None:
        generated_at: str | None = chain.at_text(found.until)
    else:
        generated_at = chain.at_text(last.at) if last is not None else None
    return {
        "report": "audit-log",
        "vigie_version": version("vigie"),
        "generated_at": generated_at,
        "filters": {
            "since": chain.at_text(found.since) if found.since else None,
            "until": chain.at_text(found.until) if found.until else None,
            "actor": found.actor,
            "action": found.action,
            "kind": found.kind,
        },
        "consecutive": not (found.actor or found.action or found.kind),
        "rows": count,
        "first_id": first.id if first else None,
        "last_id": last.id if last else None,
        "anchor": anchor,
        "csv": {"name": CSV_NAME, "sha256": csv_sha256, "separator": ";"},
        "row_hash": "sha256 of the JSON array (UTF-8, no spaces) of the row's cells but "
        "row_hash, prev_hash last; the first row follows `anchor`",
        "signature": {**signer.identity(), "file": SIGNATURE},
    }


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    """Files zipped as an extract is (tests rebuild altered extracts with it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files:
            archive.writestr(_entry(name), data)
    return out.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    """A ZIP entry without the clock in it: the same rows give the same bytes."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


@dataclass
class Verdict:
    """What `verify` found: every problem, said with its place (file, line, row id)."""

    problems: list[str] = field(default_factory=list)
    rows: int = 0
    key: str = ""  # which key the signature was checked with

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(data: bytes, pinned: Ed25519PublicKey | None = None) -> Verdict:
    """Check an extract: the manifest's signature (with `pinned`, else the key it carries),
    the CSV's sha256, and the chain row by row."""
    verdict = Verdict()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        files = {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
        verdict.problems.append(f"not a readable ZIP: {exc}")
        return verdict
    missing = [n for n in (CSV_NAME, MANIFEST, SIGNATURE) if n not in files]
    if missing:
        verdict.problems.append(f"missing from the ZIP: {', '.join(missing)}")
        return verdict
    try:
        manifest = json.loads(files[MANIFEST])
        expected_sha = manifest["csv"]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        verdict.problems.append(f"{MANIFEST}: not a manifest ({exc})")
        return verdict
    _check_signature(verdict, files, manifest, pinned)
    actual_sha = hashlib.sha256(files[CSV_NAME]).hexdigest()
    if actual_sha != expected_sha:
        verdict.problems.append(
            f"{CSV_NAME}: sha256 {actual_sha} is not the manifest's {expected_sha} "
            "(the CSV was changed)"
        )
    _check_rows(verdict, files[CSV_NAME], manifest)
    return verdict


def _check_signature(
    verdict: Verdict,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    pinned: Ed25519PublicKey | None,
) -> None:
    signature = manifest.get("signature")
    carried = signature.get("public_key") if isinstance(signature, dict) else None
    key = pinned
    if key is None:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(carried or ""))
        except (ValueError, binascii.Error):
            verdict.problems.append(f"{MANIFEST}: no usable public key to check the signature")
            return
        verdict.key = f"the key the manifest carries ({key_id(key)}): it proves integrity, "
        verdict.key += "not origin; pin the service's key with --public-key"
    else:
        verdict.key = f"the given key ({key_id(key)})"
    try:
        key.verify(base64.b64decode(files[SIGNATURE].strip()), files[MANIFEST])
    except (InvalidSignature, ValueError, binascii.Error):
        verdict.problems.append(
            f"{SIGNATURE}: the signature does not match {MANIFEST} with {verdict.key.split(':')[0]}"
            " (the manifest was changed, or signed by another key)"
        )


def _check_rows(verdict: Verdict, table: bytes, manifest: dict[str, Any]) -> None:
    try:
        text = table.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        verdict.problems.append(f"{CSV_NAME}: not UTF-8 at byte {exc.start}")
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    header = next(reader, None)
    if header != list(COLUMNS):
        verdict.problems.append(f"{CSV_NAME} line 1: the header is not {';'.join(COLUMNS)}")
        return
    consecutive = bool(manifest.get("consecutive"))
    expected = manifest.get("anchor")
    line, previous_id, ids = 2, None, []
    for cells in reader:
        where = f"{CSV_NAME} line {line}"
        line = reader.line_num + 1
        if len(cells) != len(COLUMNS):
            verdict.problems.append(f"{where}: {len(cells)} cells, not {len(COLUMNS)}")
            expected = None
            continue
        fields, prev, own = cells[: len(chain.FIELDS)], cells[-2], cells[-1]
        try:
            row_id = int(fields[0])
        except ValueError:
            verdict.problems.append(f"{where}: the id {fields[0]!r} is not a number")
            expected = None
            continue
        where += f" (row {row_id})"
        if previous_id is not None and row_id <= previous_id:
            verdict.problems.append(f"{where}: ids not in increasing order")
        if chain.row_hash(fields, prev) != own:
            verdict.problems.append(f"{where}: row edited, its hash does not match its cells")
        if expected is not None and prev != expected:
            after = f"row {previous_id}" if previous_id is not None else "the manifest's anchor"
            verdict.problems.append(
                f"{where}: chain broken, prev_hash does not follow {after} "
                "(a row was removed before it, or the one before changed)"
            )
        expected = own if consecutive else None
        previous_id = row_id
        ids.append(row_id)
    verdict.rows = len(ids)
    counted = (manifest.get("rows"), manifest.get("first_id"), manifest.get("last_id"))
    found_ids = (len(ids), ids[0] if ids else None, ids[-1] if ids else None)
    if counted != found_ids:
        verdict.problems.append(
            f"{CSV_NAME}: holds {found_ids[0]} rows, ids {found_ids[1]} to {found_ids[2]}; the "
            f"manifest says {counted[0]}, ids {counted[1]} to {counted[2]} (rows removed or added)"
        )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key
