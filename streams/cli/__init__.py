"""The ``tokenboard`` command: its command table, handlers and terminal views."""

from streams.cli.main import main

__all__ = ["main"]
