"""No patient data leaves the establishment: the filter every event goes through before it is
spooled, detected on, or shipped.

- HL7 v2 patient segments (PID, PD1, NK1, PV1, PV2, GT1, IN1, IN2, IN3, ACC, DG1, OBX, NTE,
  AL1, MRG) found in any text value keep their segment name and lose their fields, replaced by
  a keyed hash of the segment, so that the same patient gives the same token within one
  establishment and nothing else. MSH (who sent what to whom) is kept: it is not about a
  patient.
- DICOM patient attributes (PatientName, PatientID, PatientBirthDate, ... and any key that
  starts with `Patient`), wherever they appear as keys, are replaced by their keyed hash.
- Fields named in the configuration (dotted ECS paths, e.g. `user.full_name`) likewise.

The key is the establishment's own (32 random bytes in the agent's state folder, 0600): a
token cannot be reversed or compared across establishments. On the agent's machine, the IT
team finds what a token stands for with `vigie agent reveal` (file and folder names, found by
tokenising the configured folders again) and `vigie agent token` (the token of a value they
know, to search events for it).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

KEY_FILE = "privacy.key"
PATIENT_SEGMENTS = (
    "PID", "PD1", "NK1", "PV1", "PV2", "GT1", "IN1", "IN2", "IN3", "ACC", "DG1", "OBX", "NTE",
    "AL1", "MRG",
)  # fmt: skip
# A segment starts a line, follows an MLLP start byte, a carriage return or a blank (a message
# logged on one line), and runs to the segment separator: on one line, that may take the
# following segments too, which errs on the safe side.
_SEGMENT = re.compile(
    r"(?P<lead>^|[\s\x0b])(?P<name>" + "|".join(PATIENT_SEGMENTS) + r")(?P<sep>[|^])[^\r\n\x1c]*"
)
_SCALARS = frozenset((int, float, bool, type(None)))
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_TOKEN = re.compile(r"pseudo:[0-9a-f]{20}")
DICOM_PATIENT_KEYS = {
    "patientname", "patientid", "patientbirthdate", "patientsex", "patientaddress",
    "otherpatientids", "otherpatientnames", "patientbirthname", "patientmothersbirthname",
    "patienttelephonenumbers", "patientage", "patientweight", "patientsize",
    "issuerofpatientid", "patientcomments", "ethnicgroup", "medicalrecordlocator",
}  # fmt: skip


def load_key(state_dir: Path) -> bytes:
    """The establishment's pseudonymisation key, made on first use."""
    path = state_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        return key


class PrivacyFilter:
    def __init__(self, key: bytes, sensitive_fields: Iterable[str] = ()) -> None:
        self._key = key
        self._fields = [tuple(f.split(".")) for f in sensitive_fields]
        self.pseudonymised = 0  # values replaced, for the agent's counters

    def token(self, value: Any) -> str:
        digest = hmac.new(self._key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
        return f"pseudo:{digest[:20]}"

    def clean(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `doc` without patient data (`doc` itself is left as it is)."""
        if not self._fields and not _may_hold_patient_data(doc):
            return dict(doc)  # nothing to hide: no walk of every value (most events)
        out = self._walk(doc)
        for path in self._fields:
            self._replace_path(out, path)
        return out

    def path(self, value: str, roots: Iterable[Path]) -> str:
        """A scanned file's path with every component below its configured folder replaced by
        its token (the extension kept): file and folder names in a hospital's shares often
        carry a patient's name; the folder the establishment configured does not."""
        path = Path(value)
        for root in roots:
            try:
                relative = path.relative_to(root)
            except ValueError:
                continue
            parts = [self.token(Path(part).stem) + Path(part).suffix for part in relative.parts]
            self.pseudonymised += 1
            return str(root.joinpath(*parts))
        return str(Path(*(self.token(p) for p in path.parts)))  # outside every root: all of it

    def reveal(self, tokens: Iterable[str], roots: Iterable[Path]) -> dict[str, list[Path]]:
        """Where the names behind path tokens are, found by walking the configured folders and
        tokenising each name again (the agent keeps no table of names: the key is enough).

        `tokens` may be bare tokens or whole pseudonymised paths; each token maps to the
        files and folders whose name gives it (several when names repeat across folders).
        """
        wanted = {token for text in tokens for token in _TOKEN.findall(text)}
        found: dict[str, list[Path]] = {t: [] for t in sorted(wanted)}
        for root in roots:
            for folder, dirs, files in os.walk(root):
                for name in (*dirs, *files):
                    token = self.token(Path(name).stem)
                    if token in found:
                        found[token].append(Path(folder, name))
        return found

    # --- internals --------------------------------------------------------------------------

    def _walk(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return _SEGMENT.sub(self._segment, value) if _may_hold_hl7(value) else value
        if kind in _SCALARS:
            return value
        if kind is dict or isinstance(value, Mapping):
            cleaned = {}
            for key, item in value.items():
                if _is_patient_key(key) and item not in (None, ""):
                    self.pseudonymised += 1
                    cleaned[key] = self.token(item)
                elif type(item) is str:
                    # Most leaves: one substring test and no call (HL7 needs its "|").
                    cleaned[key] = self._walk(item) if "|" in item else item
                elif type(item) in _SCALARS:
                    cleaned[key] = item
                else:
                    cleaned[key] = self._walk(item)
            return cleaned
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, str) and _may_hold_hl7(value):
            return _SEGMENT.sub(self._segment, value)
        return value

    def _segment(self, match: re.Match[str]) -> str:
        self.pseudonymised += 1
        whole = match.group(0)[len(match.group("lead")) :]
        return f"{match.group('lead')}{match.group('name')}{match.group('sep')}{self.token(whole)}"

    def _replace_path(self, doc: dict[str, Any], path: tuple[str, ...]) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(path[-1]) not in (None, ""):
            node[path[-1]] = self.token(node[path[-1]])
            self.pseudonymised += 1
        flat = ".".join(path)  # documents may also carry the dotted name as one key
        if flat in doc and doc[flat] not in (None, ""):
            doc[flat] = self.token(doc[flat])
            self.pseudonymised += 1


@functools.lru_cache(maxsize=8192)  # field names repeat from event to event
def _is_patient_key(key: Any) -> bool:
    name = str(key).rsplit(".", 1)[-1].replace("_", "").replace(" ", "").lower()
    return name in DICOM_PATIENT_KEYS or name.startswith("patient")


def _may_hold_patient_data(doc: Mapping[str, Any]) -> bool:
    """False only when the document, as JSON, has no "|" (HL7 needs it) and no key or value
    that could name a DICOM patient attribute; the walk then has nothing to find."""
    try:
        text = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return True  # what JSON cannot hold is walked
    if b"|" in text:
        return True
    squeezed = text.translate(_ASCII_LOWER, b"_ ")  # lower case, without "_" and " ": one pass
    return (
        b"patient" in squeezed or b"ethnicgroup" in squeezed or b"medicalrecordlocator" in squeezed
    )


def _may_hold_hl7(text: str) -> bool:
    # Cheap test first: most values are not HL7 at all.
    return "|" in text and any(s in text for s in PATIENT_SEGMENTS)
