"""`vigie scan --yara` picks its engine by the size of the work; whichever it picks, the
detections are the same."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detection.yara.choice import engine_for_inputs
from tests.conftest import corpus_path

# Rules that exercise what could differ between engines: per-file externals, a condition gated
# on the file's first bytes, the pe module, hex strings with jumps, regular expressions, counts,
# offsets, a private rule used by another, and a global rule.
RULES = r"""
import "pe"

global rule not_empty { condition: filesize > 0 }
private rule php_file { condition: extension == ".php" or filetype == "PHP" }
rule webshell_eval {
    meta: score = 80 description = "eval of a request parameter"
    strings: $e = /eval\s*\(\s*\$_(POST|GET|REQUEST)\[/ nocase
    condition: php_file and $e
}
rule mz_marker {
    strings: $m = { 4D 5A [2-40] 4D 41 52 4B }
    condition: uint16(0) == 0x5a4d and $m and filetype == "EXE"
}
rule pe_many_sections { condition: pe.number_of_sections >= 2 }
rule counted { strings: $a = "vigie-token" condition: #a >= 3 and @a[1] < 100 }
rule owner_root_sh { strings: $s = "#!/bin/sh" condition: $s at 0 and owner != "" }
rule named { condition: filename matches /^secret_[0-9]+\.txt$/ and filepath contains "sub" }
"""


def _tree(root: Path) -> Path:
    """A small seeded tree: files that match each rule, near misses, and noise."""
    rng = random.Random(7)
    sub = root / "sub"
    sub.mkdir(parents=True)
    # Real PE files when this environment has some (setuptools' Windows launchers).
    venv = Path(sys.executable).parent.parent
    launchers = sorted(venv.glob("lib/python*/site-packages/*/*.exe"))[:2]
    files: dict[str, bytes] = {
        "shell.php": b"<?php eval($_POST['c']); ?>",
        "shell.txt": b"<?php eval($_POST['c']); ?>",  # not PHP by name or magic
        "fake.exe": b"MZ" + bytes(20) + b"MARK" + bytes(100),
        "not_mz.bin": b"ZM" + bytes(20) + b"MARK",
        "tokens.txt": b"vigie-token " * 3,
        "late_tokens.txt": bytes(200) + b"vigie-token " * 3,
        "run.sh": b"#!/bin/sh\necho hi\n",
        "sub/secret_12.txt": b"x",
        "secret_12.txt": b"x",
        "empty.php": b"",
    }
    for i in range(30):
        files[f"sub/noise_{i}.dat"] = rng.randbytes(rng.randrange(1, 5000))
    for launcher in launchers:
        files[f"sub/{launcher.name}"] = launcher.read_bytes()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _scan(rules: Path, inputs: Path, engine: str) -> list[tuple[Any, ...]]:
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "scan", "--yara", str(rules)]
        + ["--yara-engine", engine, "--format", "jsonl", str(inputs)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for line in run.stdout.splitlines():
        d = json.loads(line)
        strings = tuple((s["identifier"], s["offset"], s["length"]) for s in d["strings"])
        found.append((d["file"], d["rule_id"], d["level"], d["rule_title"], strings))
    return sorted(found)


def test_small_work_picks_yara_python_large_work_yara_x(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one").write_bytes(bytes(600))
    (tmp_path / "two").write_bytes(bytes(500))

    assert engine_for_inputs([tmp_path], threshold=1101) == "yara-python"
    assert engine_for_inputs([tmp_path], threshold=1100) == "auto"
    assert engine_for_inputs([tmp_path / "two"], threshold=1000) == "yara-python"
    assert engine_for_inputs([tmp_path / "missing", tmp_path / "two"], threshold=500) == "auto"


def test_every_engine_choice_gives_the_same_detections(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yar"
    rules.write_text(RULES)
    data = _tree(tmp_path / "data")

    by_engine = {e: _scan(rules, data, e) for e in ("auto", "yara-python", "yara-x")}

    assert by_engine["yara-python"] == by_engine["yara-x"] == by_engine["auto"]
    hit = {(Path(f).name, rule) for f, rule, *_ in by_engine["yara-x"]}
    assert {
        ("shell.php", "webshell_eval"),
        ("fake.exe", "mz_marker"),
        ("tokens.txt", "counted"),
        ("run.sh", "owner_root_sh"),
        ("secret_12.txt", "named"),
    } <= hit
    assert not {("shell.txt", "webshell_eval"), ("not_mz.bin", "mz_marker")} & hit
    assert not {("late_tokens.txt", "counted"), ("empty.php", "webshell_eval")} & hit
    assert sum(1 for f, rule in hit if rule == "named") == 1  # only the one under sub/


@pytest.mark.corpus
@pytest.mark.slow
def test_engines_agree_with_signature_base_on_real_files(tmp_path: Path) -> None:
    """The real rule set over the EVTX corpus (PowerShell logs with base64 loaders hit)."""
    rules = corpus_path("yara", "signature-base")
    data = corpus_path("evtx")

    python = _scan(rules, data, "yara-python")
    x = _scan(rules, data, "yara-x")

    assert python == x
    assert len(python) >= 4  # 4 with signature-base @ 8a89b3b
