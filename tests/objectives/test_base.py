"""objectives/base.py itself: what an Objective must define, its defaults, FoldData and
FoldOutput defaults, BadSetting, and that the contract imports nothing from hpo."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import objectives
from hpo.errors import UserError
from hpo.runner.plan import make_plan
from objectives.base import BadSetting, FoldData, FoldOutput, Objective, Reporter
from tests.conftest import Compose


@dataclass
class Mean(Objective):
    """The smallest objective: only what base.py leaves abstract."""

    task: str = "regression"
    flavor: str = "sklearn"

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        return FoldOutput(np.full(len(fold.X_valid), fold.y_train.mean()))

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> Any:
        return float(np.mean(y))

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), model)


@dataclass
class Strict(Mean):
    """Refuses width=0, in __init__ or in validate."""

    width: int = 1
    where: str = "validate"

    def __post_init__(self) -> None:
        if self.where == "__init__":
            self.validate()

    def validate(self, values: Any = None) -> None:
        if self.width < 1:
            raise BadSetting(
                f"study.objective.width={self.width} is not a whole number: use width >= 1"
            )


def fold(n_train: int = 4, n_valid: int = 2) -> FoldData:
    rng = np.random.default_rng(0)
    return FoldData(
        rng.normal(size=(n_train, 2)), rng.normal(size=n_train), np.ones((n_valid, 2)), 0, 0
    )


@pytest.mark.parametrize("missing", ["fit_predict", "refit", "predict"])
def test_an_objective_must_define_fit_predict_refit_and_predict(missing: str) -> None:
    namespace = {k: v for k, v in vars(Mean).items() if k != missing and not k.startswith("__")}
    incomplete = type("Incomplete", (Objective,), namespace)
    with pytest.raises(TypeError, match=missing):
        incomplete()


def test_the_defaults_check_nothing_report_nothing_and_require_nothing() -> None:
    objective = Mean()
    assert objective.validate() is None
    assert objective.validate({"alpha": (-1.0, float("nan")), "kind": ("anything",)}) is None
    assert objective.max_steps({"alpha": 1.0}) is None, "no steps: pruned between folds"
    assert (Mean.requirements, Mean.fit_fact_names) == ((), ())


def test_fold_data_defaults_one_thread_no_metric_and_never_stopped() -> None:
    data = fold()
    assert (data.threads, data.metric) == (1, None)
    assert data.stopped() is False


def test_fold_outputs_do_not_share_their_dicts() -> None:
    """``field(default_factory=dict)``: facts written on one fold's output stay on it."""
    one, two = FoldOutput(np.zeros(2)), FoldOutput(np.zeros(2))
    one.fit_facts["rounds"] = 3.0
    one.curves["loss"] = [0.5]
    assert (two.fit_facts, two.curves) == ({}, {})


@pytest.mark.parametrize("where", ["__init__", "validate"])
def test_a_bad_setting_reaches_the_user_as_its_own_line(make_cfg: Compose, where: str) -> None:
    """Raised by ``__init__`` (Hydra wraps it) or by ``validate``: the plan shows its message."""
    cfg = make_cfg(
        "study=tiny_prior",
        f"study.objective._target_={__name__}.Strict",
        "+study.objective.width=0",
        f"+study.objective.where={where}",
        "tracking.enabled=false",
    )
    with pytest.raises(UserError) as raised:
        make_plan(cfg)
    assert str(raised.value) == "study.objective.width=0 is not a whole number: use width >= 1"


def test_the_contract_imports_nothing_from_hpo() -> None:
    """objectives/ depends on nothing in hpo: importing the contract loads no hpo module."""
    code = (
        "import sys, objectives.base\n"
        "print(sorted(m for m in sys.modules if m == 'hpo' or m.startswith('hpo.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_objective_module_imports_hpo() -> None:
    """The rule for the whole package, read from the source (importing LoRA would load torch)."""
    importers = []
    for path in sorted(Path(objectives.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            if any(m == "hpo" or m.startswith("hpo.") for m in modules):
                importers.append(f"{path.name}:{node.lineno}")
    assert importers == []
