"""tokenboard's exception hierarchy: one root, and the two kinds a caller answers differently.

Pure code raises these; the shell maps them explicitly (HTTP: :class:`InvalidInput` is a 400,
:class:`NotFound` a 404; the CLI prints one line). Anything else that escapes is a bug, and
the HTTP servers answer it with a 500 and an error id in the log, never with a 4xx.

Both kinds also derive from the builtin a caller would have caught before (``ValueError``,
``LookupError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = ["InvalidInput", "NotFound", "TokenboardError"]


class TokenboardError(Exception):
    """Root of every error tokenboard raises on purpose."""


class InvalidInput(TokenboardError, ValueError):
    """A value from outside (a week id, a parameter, a setting) is malformed or out of range.

    The message names the value and what was expected.
    """


class NotFound(TokenboardError, LookupError):
    """What was asked for (a week, a model, a country) has no data."""
