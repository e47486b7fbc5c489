"""`vigie maturity check-framework`: exit 0 with a summary for a usable framework, 1 with every
problem for a refused one, 2 for a file that cannot be read."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from api.maturity.framework import DEFAULT

VIGIE = Path(sys.executable).parent / "vigie"


def vigie(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VIGIE), "maturity", "check-framework", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def bad_framework(folder: Path) -> Path:
    """The shipped file with an unknown check, a bad ANSSI measure and a typo in a key."""
    text = DEFAULT.read_text(encoding="utf-8")
    for old, new in [
        ("check: network.smbv1", "check: network.smbv9"),
        ('anssi: ["41.R"]', 'anssi: ["43"]'),
        ('    remediation: "Remplacer Telnet', '    remediaton: "Remplacer Telnet'),
    ]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = folder / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_framework_is_usable() -> None:
    digest = hashlib.sha256(DEFAULT.read_bytes()).hexdigest()
    text = vigie()  # no FILE: the shipped framework
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        f"vigie-care 2026.1: usable, 8 domains, 40 controls, sha256 {digest} ({DEFAULT})"
    ]
    given = vigie(DEFAULT, "--format", "json")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout) == {
        "ok": True,
        "framework": {
            "id": "vigie-care",
            "version": "2026.1",
            "title": "Maturité cyber – CaRE / ANSSI 42 / CIS IG1",
            "path": str(DEFAULT),
            "domains": 8,
            "controls": 40,
            "digest": digest,
        },
        "problems": [],
    }


def test_a_refused_file_lists_every_problem(tmp_path: Path) -> None:
    path = bad_framework(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    as_json = vigie(path, "--format", "json")
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["framework"] is None
    problems = report["problems"]
    assert [p["reason"] for p in problems] == [
        "'43' is not an ANSSI measure (1 to 42, .R)",
        "unknown check 'network.smbv9' (did you mean 'network.smbv1'?)",
        "missing",
        "unknown key",
    ]
    for problem in problems:
        assert set(problem) == {"place", "line", "reason"}
        assert problem["place"].endswith(f" (line {problem['line']})")
    # Each line number points at the text at fault.
    assert '"43"' in lines[problems[0]["line"] - 1]
    assert "network.smbv9" in lines[problems[1]["line"] - 1]
    assert "id: HYG-04" in lines[problems[2]["line"] - 1]
    assert "remediaton:" in lines[problems[3]["line"] - 1]

    as_text = vigie(path)
    assert as_text.returncode == 1
    out = as_text.stdout.splitlines()
    assert out[0] == f"{path}: not usable, 4 problem(s):"
    assert out[1:] == [f"  {p['place']}: {p['reason']}" for p in problems]


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    text = vigie(missing)
    assert text.returncode == 2
    assert text.stdout == ""
    assert text.stderr.startswith(f"vigie: error: {missing}: cannot read: ")
    as_json = vigie(tmp_path, "--format", "json")  # a folder
    assert as_json.returncode == 2
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["framework"]) == (False, None)
    assert [p["place"] for p in report["problems"]] == ["(file)"]
    assert "cannot read" in report["problems"][0]["reason"]
    # Not YAML is read, checked and refused: 1, not 2.
    (tmp_path / "not.yaml").write_text("framework: [unclosed\n", encoding="utf-8")
    assert vigie(tmp_path / "not.yaml").returncode == 1
