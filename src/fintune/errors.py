"""The one exception type for mistakes a user can fix (config, data, paths), and how its
messages name a path.

The CLI prints these as a single message and exits non-zero, without a traceback.
Anything else is a bug in fintune and keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class FintuneError(Exception):
    """A user-facing error: the message names the field, file or row and what is allowed."""


class NonFiniteScores(FintuneError):
    """A model's outputs are NaN or infinite for some texts, so they have no label.
    `rows`: their positions (from 0) among `total` texts; `why`: what is known of the cause
    (for the server, which names a text as the request does: texts[1])."""

    def __init__(self, message: str, rows: list[int] = (), total: int = 0, why: str = ""):
        super().__init__(message)
        self.rows, self.total, self.why = list(rows), total, why


def relative_note(path: str | Path) -> str:
    """For a relative path that was not found: where it was looked for."""
    if Path(path).is_absolute():
        return ""
    return f" (relative paths are read from the current directory, {os.getcwd()})"
