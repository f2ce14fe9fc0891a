"""The MLflow side of hpo: one experiment per study, one parent run, one child run per trial.

| module | holds |
|---|---|
| ``records.py`` | ``TrialRecord``: what the runner hands over for one trial's run, and |
|                | ``thinned``: the steps a curve keeps (no MLflow) |
| ``tracker.py`` | ``Tracker`` (experiment, child runs, and the parent run's writes below) |
| ``parent_run.py`` | ``ParentRun``: the parent run opened once, the study's results and |
|                | description on it (a part of ``Tracker``) |
| ``store.py``   | where MLflow is: ``is_server``, ``check_server``, ``bound_calls``, |
|                | ``default_artifacts``, ``lost_race`` (an insert another process won) |
| ``writes.py``  | ``Writes``: one MlflowClient applying run writes, the spool for an outage; |
|                | ``unreachable``: an outage, not a wrong write |
| ``writer.py``  | the child-run writes off the trial's path: ``ProcessWriter``, ``InlineWriter`` |
| ``spool.py``   | ``Spool``: writes MLflow could not take, kept on disk until it is back |
|                | (no MLflow) |
| ``models.py``  | ``log_model``: the refit best model, with the objective's pip requirements; |
|                | ``keep_one``: one best model per study; ``log_decision_model`` |
| ``decision_model.py`` | the cost threshold applied to the best model (MLflow models from code) |
| ``relocate.py`` | ``relocate``: a moved or copied study folder's MLflow locations pointed |
|                 | at its own ``mlartifacts``; ``artifacts_beside`` |

Import from the modules: this package imports none of them, so that
``hpo.tracking.records`` (all a worker with tracking off needs) never loads
MLflow. The tag and attribute names the modules write are in hpo/names.py.
"""
