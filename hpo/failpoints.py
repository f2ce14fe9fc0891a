"""Named points where a test may kill this process at once, as a crash there would.

The fault matrix (benchmarks/faults, row ``nightly-killed``) kills a night at
each step of its end, then runs the night again, to show that the rerun
finishes it: one model version, the alias set, every run closed. It sets
``HPO_FAILPOINT=<step>`` for the process it starts; production never sets it.
"""

from __future__ import annotations

import os
import signal

ENV = "HPO_FAILPOINT"
# The end of a night, in the order it reaches them (finish.* is inside the study's own end).
NIGHT_STEPS: tuple[str, ...] = (
    "finish.model-logged",  # the best model logged, the parent run not yet tagged with it
    "night.trials-done",  # the study ended; nothing registered yet
    "night.registered",  # the model version created, the decision not yet recorded
    "night.recorded",  # the decision on the parent run, the alias not yet moved
    "night.promoted",  # the challenge over, the ledger run not yet told
    "night.closed",  # the ledger run closed, the nightly report not yet written
)


def reached(step: str) -> None:
    """SIGKILL this process now if ``HPO_FAILPOINT`` names ``step``: no finally, no atexit."""
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
