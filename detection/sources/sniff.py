"""Which reader an input needs, from its name and its first bytes; and opening text inputs.

Content decides where it is unambiguous (EVTX and pcap magic numbers, the header lines of Zeek,
W3C and Event Viewer logs, a JSON opening brace, a syslog prefix); the name decides what content
alone cannot (`.json` that starts badly is still read as JSON so that its bad records are
reported, `.log` text without a syslog prefix is still read line by line). Whatever is neither
is `binary`: YARA only.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from pathlib import Path
from typing import Literal

InputKind = Literal[
    "evtx", "winjson", "json", "syslog", "csv", "zeek", "w3c", "eventviewer", "pcap", "binary"
]

EVTX_MAGIC = b"ElfFile\x00"
GZIP_MAGIC = b"\x1f\x8b"
PCAP_MAGICS = (
    b"\xd4\xc3\xb2\xa1",  # pcap, microseconds, little-endian
    b"\xa1\xb2\xc3\xd4",  # pcap, microseconds, big-endian
    b"\x4d\x3c\xb2\xa1",  # pcap, nanoseconds, little-endian
    b"\xa1\xb2\x3c\x4d",  # pcap, nanoseconds, big-endian
    b"\x0a\x0d\x0d\x0a",  # pcapng section header block
)
HEAD_SIZE = 8192

_JSON_EXT = {".json", ".jsonl", ".ndjson", ".jsoncls"}
_CSV_EXT = {".csv", ".tsv"}
_TEXT_LOG_EXT = {".log", ".syslog", ".messages"}  # not .txt: notes and READMEs are no logs
_TEXT_LOG_NAMES = {"syslog", "messages", "secure", "auth", "kern", "daemon", "cron", "maillog"}
_PCAP_EXT = {".pcap", ".pcapng", ".cap"}

# `<PRI>`, `Mmm dd hh:mm:ss` (RFC 3164 and files such as auth.log), or an RFC 3339 stamp
# followed by a host (rsyslog's high-precision file format).
_SYSLOG_START = re.compile(
    r"<\d{1,3}>"
    r"|[A-Z][a-z]{2} [ \d]?\d (?:\d{4} )?\d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)? \S"
)
_CSV_DELIMITERS = (",", ";", "\t", "|")


def sniff(path: Path) -> InputKind:
    """The kind of one input file. Raises OSError when the file cannot be read at all."""
    with path.open("rb") as fh:
        head = fh.read(HEAD_SIZE)
    suffix = _log_suffix(path)
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as gz:
                head = gz.read(HEAD_SIZE)
        except (OSError, EOFError):
            return "binary"
        # The readers of compressed inputs read text only; an archive of anything else is for YARA.
        if head.startswith(EVTX_MAGIC) or head[:4] in PCAP_MAGICS:
            return "binary"
    elif head.startswith(EVTX_MAGIC):
        return "evtx"
    elif head[:4] in PCAP_MAGICS:
        return "pcap"
    # A damaged EVTX or capture is still handed to its reader, which reports what is wrong.
    if suffix == ".evtx" and not head.startswith(GZIP_MAGIC):
        return "evtx"
    if suffix in _PCAP_EXT and not head.startswith(GZIP_MAGIC):
        return "pcap"
    text = _decode_head(head)
    if text is None:
        # Event Viewer may write its CSV in the ANSI code page (Windows-1252), not UTF-8.
        ansi = head.decode("cp1252", errors="replace")
        return "eventviewer" if _header_kind(ansi) == "eventviewer" else "binary"
    return _text_kind(text, suffix, _log_stem(path))


def _text_kind(text: str, suffix: str, stem: str) -> InputKind:
    # Headers that name their format outright come first, whatever the file is called.
    header = _header_kind(text.lstrip("\ufeff"))
    if header is not None:
        return header
    start = text.lstrip()
    if not start:  # empty text: the name says what it would have been
        if suffix in _JSON_EXT:
            return "json"
        if suffix in _CSV_EXT:
            return "csv"
        return "syslog" if _is_text_log_name(suffix, stem) else "binary"
    if start[0] == "{" or (start[0] == "[" and start[1:].lstrip()[:1] in ("{", "]", "")):
        return "json"
    if suffix in _JSON_EXT:
        return "json"
    if suffix in _CSV_EXT:
        return "csv"
    if _SYSLOG_START.match(start):
        return "syslog"
    # The second line may be cut short by the end of the head: only whole lines are compared.
    lines = start.splitlines()
    if _looks_like_csv(lines[:2] if len(lines) > 2 else lines[:1]):
        return "csv"
    return "syslog" if _is_text_log_name(suffix, stem) else "binary"


# W3C extended log directives (IIS, Exchange, proxies): `#Software:`, `#Version:`, `#Date:`,
# `#Fields:`, `#Remark:`.
_W3C_DIRECTIVE = re.compile(r"#(?:Software|Version|Date|Fields|Remark|Start-Date|End-Date):")
# Event Viewer's "Save All Events As... CSV": its column names in English and in French. The
# first column is `Level`, or `Keywords` for the Security log; the message has no name.
_EVENT_VIEWER_HEADER = re.compile(
    r"(?:Level|Keywords|Niveau|Mots-cl\S*),Date and Time,Source,Event ID,Task Category\s*$"
    r"|(?:Level|Keywords|Niveau|Mots-cl\S*),Date et heure,Source,ID de l.\S*nement,"
    r"Cat\S*gorie de la t\S*che\s*$"
)


def _header_kind(text: str) -> InputKind | None:
    first = text.split("\n", 1)[0].rstrip("\r")
    if _EVENT_VIEWER_HEADER.match(first):
        return "eventviewer"
    if _W3C_DIRECTIVE.match(first):
        return "w3c"
    # Zeek: `#separator` first, after `#` comment lines (Zeek's test baselines open with one).
    for line in text.splitlines():
        if line.startswith("#separator "):
            return "zeek"
        if not line.startswith("#"):
            break
    return None


def _looks_like_csv(lines: list[str]) -> bool:
    """A header of two or more short column names, and a first row with as many cells."""
    for delimiter in _CSV_DELIMITERS:
        rows = list(csv.reader(lines[:2], delimiter=delimiter))
        names = [name.strip() for name in rows[0]] if rows else []
        if len(names) < 2 or not all(_is_column_name(name) for name in names):
            continue
        if len(rows) < 2 or len(rows[1]) == len(names):
            return True
    return False


def _is_column_name(name: str) -> bool:
    # Names such as `Date and Time` or `id.orig_h`; not a sentence that happens to hold a comma.
    return 0 < len(name) <= 64 and name.count(" ") <= 3 and name[-1] not in ".!?:"


def _is_text_log_name(suffix: str, stem: str) -> bool:
    return suffix in _TEXT_LOG_EXT or stem in _TEXT_LOG_NAMES


# The logs Zeek writes (its base scripts and common packages), as named in `_path`.
ZEEK_LOGS = frozenset(
    (
        *("conn", "dns", "http", "ssl", "x509", "files", "smtp", "ssh", "ftp", "irc", "sip"),
        *("snmp", "socks", "rdp", "vnc", "mysql", "radius", "ntp", "dhcp", "dce_rpc", "tunnel"),
        *("smb_files", "smb_mapping", "kerberos", "ntlm", "ldap", "ldap_search", "quic"),
        *("weird", "notice", "software", "known_hosts", "known_services", "known_certs", "pe"),
        *("ocsp", "modbus", "dnp3", "bacnet", "s7comm", "mqtt_connect", "mqtt_publish"),
        "mqtt_subscribe",
    )
)


def zeek_log_name(source: str) -> str | None:
    """`/var/log/zeek/dns.log`, `conn.09:00:00-10:00:00.log.gz` -> `dns`, `conn`: the Zeek log
    a file is named after, if it is one."""
    stem = source.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0].lower()
    return stem if stem in ZEEK_LOGS else None


def _log_suffix(path: Path) -> str:
    """The meaningful extension: `auth.log.2.gz` -> `.log`, `events.JSONL` -> `.jsonl`."""
    parts = [s.lower() for s in path.suffixes if not s[1:].isdigit() and s.lower() != ".gz"]
    return parts[-1] if parts else ""


def _log_stem(path: Path) -> str:
    return path.name.split(".", 1)[0].lower()


def _decode_head(head: bytes) -> str | None:
    """The head as text, or None if it is not text (NUL bytes outside UTF-16, bad UTF-8)."""
    encoding = _bom_encoding(head)
    if encoding is None:
        if b"\x00" in head:
            return None
        encoding = "utf-8-sig"
    # The head may end inside a multi-byte character: decode incrementally, not strictly.
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f\v\x1b" for c in text):
        return None
    return text


def _bom_encoding(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    return None


def open_binary(path: Path) -> gzip.GzipFile | io.BufferedReader:
    """Open an input for reading bytes, decompressing it if it is gzip-compressed."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else path.open("rb")


def open_text(path: Path, errors: str = "replace") -> io.TextIOWrapper:
    """Open a text input for streaming: gzip-compressed or not, UTF-8 (BOM or not) or UTF-16.

    `errors` says what becomes of bytes that are not text: `replace` for logs read as lines,
    `surrogateescape` where the parser should reject the record instead. Lines keep their
    line ends (`newline=""`, as the csv module needs).
    """
    with open_binary(path) as fh:
        encoding = _bom_encoding(fh.read(2)) or "utf-8-sig"
    return io.TextIOWrapper(open_binary(path), encoding=encoding, errors=errors, newline="")
