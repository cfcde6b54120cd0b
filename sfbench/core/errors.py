"""User-facing errors: the CLI prints them on one line and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SfbenchError(Exception):
    """Base class of every error caused by user input or a missing asset."""


class UnknownChoice(SfbenchError):
    """A name (suite, policy, protocol, key, ...) that is not one of the valid choices."""

    def __init__(self, kind: str, value: object, choices: Iterable[object]):
        choices = sorted(str(c) for c in choices)
        hint = difflib.get_close_matches(str(value), choices, n=1)
        did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
        super().__init__(f"Unknown {kind} '{value}'.{did_you_mean} Choices: {', '.join(choices)}.")


class InvalidConfig(SfbenchError):
    """A configuration value outside its valid range or of the wrong type."""


class MissingAsset(SfbenchError):
    """A file, checkpoint, dataset or optional package that is not available."""


class DamagedDataset(SfbenchError):
    """A dataset file that exists but cannot be read as its format says (bad checksum, truncated, inconsistent)."""


class DamagedCheckpoint(SfbenchError):
    """A checkpoint file that exists but cannot be read as its format says (not JSON, truncated, a directory)."""
