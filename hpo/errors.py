"""The exceptions the command line turns into one line instead of a traceback.

A UserError (a mistake the user can fix) prints one line and exits 2; a
StudyStopped (the study could not go on: its objective failing in a row, a
full disk) prints the summary of what finished, one line, and exits 1. Every
other exception is a bug or an outage and keeps its traceback (status 1).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpo.report import Summary


class UserError(Exception):
    """A mistake in the command line, a study file or the environment, with its fix.

    The message must name the problem and the fix in one line, for example
    ``unknown metric 'f2': choose one of accuracy, f1, ...``.
    """


class StudyStopped(Exception):
    """The study stopped before its budget, for a reason named in one line with its fix;
    ``summary``: what had finished (None where nothing could be read back)."""

    def __init__(self, message: str, summary: Summary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


DISK_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` or an error it wraps (SQLAlchemy, MLflow) is a full disk or quota."""
    seen: set[int] = set()
    found: BaseException | None = err
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if isinstance(found, OSError) and found.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(found).lower() for text in DISK_FULL_TEXTS):
            return True
        found = found.__cause__ or found.__context__
    return False
