"""``python -m hpo.data OUT.jsonl [SEED]``: see hpo/data/intents.py."""

import sys

from hpo.data.intents import main

if __name__ == "__main__":
    main(sys.argv[1:])
