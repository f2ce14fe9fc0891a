"""Replay: re-run one trial from what its MLflow run recorded, and say if it comes out the same.

- ``recorded``: the trial's run, its study's parent run and config.yaml, read back
- ``fingerprints``: the replay's data and folds against the study's record
- ``versions``: the packages installed now against the ones the study recorded
- ``command``: ``replay`` (one report line and an exit status) and ``main``
"""

from hpo.replay.command import Outcome, main, replay

__all__ = ["Outcome", "main", "replay"]
