"""The one exception type for mistakes a user can fix (config, data, paths).

The CLI prints these as a single message and exits non-zero, without a traceback.
Anything else is a bug in fintune and keeps its traceback.
"""


class FintuneError(Exception):
    """A user-facing error: the message names the field, file or row and what is allowed."""
