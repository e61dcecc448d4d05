"""The failures of the developer tooling that reach the operator as one clear line."""

from __future__ import annotations


class StackError(Exception):
    """A failure worth one clear message to the operator (printed without a traceback)."""


class StackTimeout(StackError):
    """A condition :func:`devstack.procs.wait_until` waited on did not come true in time."""


class EmulatorMissing(StackError):
    """An emulator or server binary is not installed; the message names the command that installs it."""
