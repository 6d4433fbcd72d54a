"""The ``inference-thresholds`` command: one entry point, subcommands by concern.

Each subcommand module exposes ``register(subparsers)`` and must not import kopf or
the kubernetes client at module level, so ``compute``/``check`` work in slim pods.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__

# Module names under inference_thresholds.cli, in help order.
SUBCOMMAND_MODULES = (
    "engine_cmds",
    "agent_cmds",
    "operator_cmds",
    "client_cmds",
)


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-thresholds",
        description="Hardware-, model- and context-aware thresholds for LLM inference.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        # Every listed module ships with the package: a missing one is a broken install.
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse and dispatch to the subcommand's ``func``: a ``CliError`` is a message and
    exit status 2, Ctrl-C exit status 130 (also for the development CLI)."""
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
