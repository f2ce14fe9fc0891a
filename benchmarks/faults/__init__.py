"""The fault matrix: real faults against real components, and the invariants each must keep.

Issue 11's promise is that Optuna's storage and MLflow always agree and no
finished trial is ever lost. Each row of ``python -m benchmarks.faults``
starts ``python -m hpo`` processes on a study, injects one fault (a signal to
a worker, a PostgreSQL restart, sessions killed, a torn or damaged journal, a
full disk, a broken objective, the tracking server gone, two nights at once),
lets them end, and checks invariants a-g (invariants.py).

  cluster.py     a private PostgreSQL (initdb, pg_ctl) a row may restart and kill
  server.py      an MLflow tracking server a row may stop and start again
  scene.py       the study file, its stores, the hpo processes of a row
  objective.py   the cheap objective every row tunes (slow or broken on request)
  watch.py       invariant (a) while a PostgreSQL row runs
  invariants.py  the checks, held / broken / n/a with a reason
  rows/          one function per fault, a module per kind of fault (base: the scenes)
  __main__.py    the table
"""
