"""``python -m hpo.ui``: see hpo/ui/command.py."""

from hpo.ui.command import main

if __name__ == "__main__":
    main()
