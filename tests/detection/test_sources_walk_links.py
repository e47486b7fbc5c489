"""The input walk with links: each file once by its real path, linked folders not entered.

The walk computes real paths from the folder's instead of resolving every file; these cases are
where the two could differ."""

from __future__ import annotations

import os
from pathlib import Path

from detection.sources.read import iter_input_files


def test_links_and_linked_roots_give_each_file_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.log").write_text("x")
    (data / "sub" / "b.log").write_text("x")
    (data / "link_to_a.log").symlink_to(data / "a.log")  # after a.log: a.log is kept
    (data / "0_link_to_b.log").symlink_to(data / "sub" / "b.log")  # before sub/: the link kept
    (data / "linked_folder").symlink_to(data / "sub", target_is_directory=True)
    (data / "broken.log").symlink_to(tmp_path / "nowhere")
    outside = tmp_path / "outside.log"
    outside.write_text("x")
    (data / "link_out.log").symlink_to(outside)
    alias = tmp_path / "alias"
    alias.symlink_to(data, target_is_directory=True)

    files = list(iter_input_files([data, alias, outside, alias / "sub" / "b.log"]))

    assert files == [data / "0_link_to_b.log", data / "a.log", data / "link_out.log"]
    assert {os.path.realpath(f) for f in files} == {
        str(data / "sub" / "b.log"),
        str(data / "a.log"),
        str(outside),
    }


def test_given_through_a_linked_root_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.log").write_text("x")
    alias = tmp_path / "alias"
    alias.symlink_to(data, target_is_directory=True)

    assert list(iter_input_files([alias, data / "a.log"])) == [alias / "a.log"]
