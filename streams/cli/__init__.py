"""The ``tokenboard`` command: its command table, handlers and terminal views."""
