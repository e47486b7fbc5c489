"""`vigie`: one command, subcommands per part (DESIGN.md, "Command line")."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cli import agent, demo, netmeta, rules, scan, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigie", description="Cyber-surveillance for health establishments."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scan.add_parser(commands)
    rules.add_parser(commands)
    serve.add_parser(commands)
    agent.add_parser(commands)
    netmeta.add_parser(commands)
    demo.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("vigie: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
