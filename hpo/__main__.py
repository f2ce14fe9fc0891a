"""``python -m hpo``: a bare ``--help`` is answered at once (hpo/usage.py); anything else
is the command (hpo/command.py), which imports Hydra and Optuna first (about a second)."""

from __future__ import annotations

import sys

from hpo import usage


def main() -> None:
    """Entry point of ``python -m hpo`` and the ``hpo`` console script."""
    if usage.wanted(sys.argv[1:]):
        print(usage.text())
        return
    from hpo.command import main as command

    command()


if __name__ == "__main__":
    main()
