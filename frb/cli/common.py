"""Helpers shared by the sub-commands.

Usage errors (a missing input, an output folder that cannot be written, a bad choice) raise
:class:`UsageError`; ``frb.cli.main`` reports it with :func:`usage_error` (argparse-style, exit
code 2), and a model without usable weights with :func:`weights_error` (exit code 1).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """A command line that cannot be carried out; the message is meant for the user."""


def usage_error(command: str, exc: Exception) -> int:
    """Print ``frb COMMAND: error: MESSAGE`` on stderr and return 2, as argparse does."""
    print(f"frb {command}: error: {exc}", file=sys.stderr)
    return 2


def weights_error(command: str, exc: Exception) -> int:
    """A model the command needs has no usable weights (``frb.hub.WeightsError``): the same message
    as a usage error, but exit code 1, since the command line itself was fine."""
    usage_error(command, exc)
    return 1


ALLOW_RANDOM_HELP = ("run a model without usable trained weights randomly initialised (seeded) instead of "
                     "stopping; its output means nothing")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def ensure_output_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed; raise :class:`UsageError` unless it is a writable folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"output folder {path} is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} is not writable")
    return path


def print_notice(notice: str) -> None:
    """A non-fatal notice (e.g. missing trained weights) on stderr; nothing for an empty one."""
    if notice:
        print(f"note: {notice}", file=sys.stderr)
