"""The one error type for input a user can fix.

``UserError`` (a ValueError) is raised for a file, record, setting or command-line value that cannot be
used; its message names the file (with ``:line`` where there is one) or the value, and what is wrong.
``cdmpp-tvm`` prints it as one line, ``error: <message>``, and exits with code 2. Every other exception
is a bug and keeps its traceback. The specific errors (``ConfigError``, ``CheckpointError``,
``SuiteError``, ``WorkloadFileError``, ``SelectionError``, ...) subclass it.
"""
from __future__ import annotations


class UserError(ValueError):
    """Input the user can fix; the message names it (see the module docstring)."""
