"""Data sets a study can name, as a concept folder: everything here works offline.

``data: NAME``                          a named data set (``LOADERS``)
``data: {path: FILE.csv, target: COL}`` a local CSV of numeric features
``data: {name: intents, ...}``          the generated text data, with options
``data: {path: FILE.jsonl, text: COL, target: COL, group: COL}``  local text data

One module per job, each importing only those above it:

- ``base``: ``Dataset`` (features, encoded target, groups, fingerprint) and ``Loader``
- ``tabular``: scikit-learn's bundled and generated tables, a local CSV
- ``intents``: the seeded generator of customer-support utterances
- ``text``: text data sets (the generated intents, local CSV/JSONL files)
- ``registry``: ``LOADERS``, the table of names, and ``load_data``, which reads a study's spec

``python -m hpo.data OUT.jsonl [SEED]`` writes the generated intents as JSON lines.
"""

from hpo.data.base import Dataset, Loader
from hpo.data.intents import generate_intents
from hpo.data.registry import LOADERS, load_data
from hpo.data.text import load_text

__all__ = ["LOADERS", "Dataset", "Loader", "generate_intents", "load_data", "load_text"]
