"""`vigie scan`'s progress line: on stderr when it is a terminal (a real pseudo-terminal here),
never when it is piped, and never mixed into the detections on stdout."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from detection.hunt import Hunt, HuntProgress
from detection.sigma import SigmaEngine, load_sigma_rules

RULE = """title: Query for a test domain
id: 0b7c3b53-4f4e-4d0e-9a59-0d3f7d1f4c11
status: test
logsource: {product: zeek, service: dns}
detection:
  sel:
    query|endswith: '.test'
  condition: sel
level: low
"""
HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\n"
)


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "dns.yml").write_text(RULE, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(3):
        lines = [
            f"17636328{n:02d}.5\tC{n}{i}\t10.1.0.{i}\t5000{i}\t10.1.0.53\t53\tudp\thost{i}."
            + ("test" if i % 50 == 0 else "fr")
            for i in range(200)
        ]
        (logs / f"dns{n}.log").write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return rules, logs


def scan_on_terminal(*args: str | Path) -> tuple[str, str, int]:
    """Run `vigie scan` with stderr on a pseudo-terminal and stdout on a pipe; return what the
    terminal showed, stdout, and the exit status."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    with subprocess.Popen(
        [sys.executable, "-m", "cli.main", "scan", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    ) as process:
        os.close(follower)
        shown = bytearray()
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read() if process.stdout else b""
        status = process.wait()
    os.close(leader)
    return shown.decode("utf-8", "replace"), stdout.decode(), status


def test_progress_on_a_terminal_and_clean_detections_on_stdout(case: tuple[Path, Path]) -> None:
    rules, logs = case
    shown, stdout, status = scan_on_terminal("--sigma", rules, "--format", "jsonl", logs)
    assert status == 0
    assert "files 3/3" in shown
    assert "events/s" in shown
    assert "left" in shown
    assert re.search(r"\d+\.\d/\d+\.\d kB", shown)  # bytes done of the total
    found = [json.loads(line) for line in stdout.splitlines()]  # nothing but detections
    assert len(found) == 12
    assert {d["event"]["query"] for d in found} == {
        "host0.test",
        "host50.test",
        "host100.test",
        "host150.test",
    }


def test_no_progress_when_stderr_is_piped_or_when_asked(case: tuple[Path, Path]) -> None:
    rules, logs = case
    piped = subprocess.run(
        [sys.executable, "-m", "cli.main", "scan", "--sigma", str(rules), "--format", "jsonl"]
        + [str(logs)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert len(piped.stdout.splitlines()) == 12
    shown, stdout, status = scan_on_terminal(
        "--no-progress", "--sigma", rules, "--format", "jsonl", logs
    )
    assert status == 0
    assert shown == ""
    assert stdout == piped.stdout


@pytest.mark.parametrize("workers", [1, 2])
def test_hunt_reports_its_progress_to_the_end(case: tuple[Path, Path], workers: int) -> None:
    rules, logs = case
    seen: list[HuntProgress] = []
    hunt = Hunt(SigmaEngine(load_sigma_rules([rules])), workers=workers, on_progress=seen.append)
    assert len(list(hunt.run([logs]))) == 12
    size = sum(p.stat().st_size for p in logs.iterdir())
    assert seen[0].files_done == 0
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)
    last = seen[-1]
    assert (last.files_done, last.files_total) == (3, 3)
    assert (last.bytes_done, last.bytes_total) == (size, size)
    assert last.events == 600
