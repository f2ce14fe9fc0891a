"""The one exception type that means "the user asked for something we cannot do".

The CLI prints a UserError as a single line and exits with status 2; every
other exception is a bug or an outage and keeps its traceback (status 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command line, a study file or the environment, with its fix.

    The message must name the problem and the fix in one line, for example
    ``unknown metric 'f2': choose one of accuracy, f1, ...``.
    """
