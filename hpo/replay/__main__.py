"""``python -m hpo.replay``: see hpo/replay/command.py."""

from hpo.replay.command import main

if __name__ == "__main__":
    main()
