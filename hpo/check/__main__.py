"""``python -m hpo.check``: see hpo/check/command.py."""

from hpo.check.command import main

if __name__ == "__main__":
    main()
