"""The MLP objective (``objectives.mlp.MLPObjective``, as the studies name it) and its parts."""

from objectives.mlp.knobs import MLPKnobs, SettingError
from objectives.mlp.network import Pipeline, build_network
from objectives.mlp.objective import MLPObjective

__all__ = ["MLPKnobs", "MLPObjective", "Pipeline", "SettingError", "build_network"]
