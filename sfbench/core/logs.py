"""Keep third-party chatter out of sfbench's output; sfbench's own log lines are untouched.

robosuite warns at import that no private macro file exists (through its own handler and again
through the root logger), and PyOpenGL logs at INFO that its optional accelerator is missing. Neither
can change a score. A filter on the logger itself (not a level, which robosuite resets when it is
imported) drops them in every process that calls :func:`quiet_third_party_logs`: the CLI and each
spawned env worker.
"""

from __future__ import annotations

import logging

# Logger name -> lowest level that is still shown.
# Exact names: a logger's filters do not apply to records of its children.
THIRD_PARTY = {"robosuite_logs": logging.ERROR, "OpenGL.acceleratesupport": logging.WARNING,
               "websockets.server": logging.WARNING, "websockets.client": logging.WARNING}


class _Below(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def quiet_third_party_logs() -> None:
    """Drop the third-party records below their :data:`THIRD_PARTY` level (idempotent)."""
    for name, level in THIRD_PARTY.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Below) for f in logger.filters):
            logger.addFilter(_Below(level))
