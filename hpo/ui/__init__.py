"""``python -m hpo.ui``: one command to look at a study in MLflow's UI (and optuna-dashboard).

``target`` finds what to show and builds its URLs, ``servers`` starts, waits
for and stops the web servers, ``command`` is the entry point.
"""
