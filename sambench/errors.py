"""User-facing errors.

A :class:`SambenchError` is a user mistake or bad input (unknown name, missing file, corrupt
annotation). The CLI prints its message as one line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class SambenchError(Exception):
    """A problem the user can fix; its message is the whole explanation."""


class UnknownNameError(SambenchError, KeyError):
    """A name not in a registry; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
