"""``python -m hpo``: ``--help`` is answered from file names (hpo/usage.py), and with
overrides it adds their composed config as ``--cfg job`` prints it (1 s, where Hydra's
help took 3-10 s); anything else is the command (hpo/command.py)."""

from __future__ import annotations

import sys

from hpo import usage


def main() -> None:
    """Entry point of ``python -m hpo`` and the ``hpo`` console script."""
    argv = sys.argv[1:]
    if usage.wanted(argv):
        print(usage.text())
        return
    from hpo.command import main as command

    if usage.with_overrides(argv):  # the page, then the config as --cfg job composes it
        print(usage.text(), "", usage.COMPOSED, sep="\n", flush=True)
        sys.argv[1:] = usage.as_cfg_job(argv)
    command()


if __name__ == "__main__":
    main()
