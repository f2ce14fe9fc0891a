"""``python -m hpo.storages.proxy``: see hpo/storages/proxy/command.py."""

from hpo.storages.proxy.command import main

if __name__ == "__main__":
    main()
