"""LoRA knobs: unknown parameters and impossible settings are refused; alpha and modules;
the serving knobs (merge, quantize) and their refusals, one line before the first trial."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from objectives.base import BadSetting
from objectives.lora import LoRAObjective
from objectives.lora.objective import UNMERGED_INT8
from tests.hpo.helpers import hpo


def test_unknown_parameters_and_bad_settings_are_refused() -> None:
    objective = LoRAObjective()
    with pytest.raises(ValueError, match="unknown LoRA parameter"):
        objective.knobs({"rank": 4})
    with pytest.raises(ValueError, match="bias"):
        objective.knobs({"bias": "some"})
    assert objective.knobs({"r": 4, "alpha_ratio": 4.0}).alpha() == 16
    assert objective.knobs({"target_modules": "q_lin, v_lin"}).modules() == ["q_lin", "v_lin"]


def test_int8_without_merge_is_refused_in_one_line_naming_the_fix() -> None:
    objective = LoRAObjective()
    with pytest.raises(ValueError, match=r"needs merge=true: set merge to true") as refused:
        objective.knobs({"quantize": "int8"})
    assert len(str(refused.value).splitlines()) == 1
    assert objective.knobs({"merge": True, "quantize": "int8"}).serving() == "int8"
    assert objective.knobs({"merge": True}).serving() == "merged"
    assert objective.knobs({}).serving() == "adapter"

    with pytest.raises(BadSetting) as fixed:  # fixed under study.objective: before any trial
        LoRAObjective(quantize="int8").validate()
    assert str(fixed.value) == (
        "study.objective.quantize='int8': int8 quantizes the merged model, so it needs "
        "merge=true: set study.objective.merge=true, or quantize to none"
    )
    with pytest.raises(BadSetting, match=r"^study\.space\.quantize offers quantize='int8': .*"):
        objective.validate({"quantize": ("none", "int8")})  # merge is never true
    assert "when: {merge: true}" in str(_refusal(objective, {"quantize": ("int8",)}))
    objective.validate({"merge": (False, True), "quantize": ("none", "int8")})  # merge can be
    LoRAObjective(merge=True, quantize="int8").validate({"r": (2, 4)})
    with pytest.raises(BadSetting, match=r"offers merge=False, but then quantize='int8'"):
        LoRAObjective(merge=True, quantize="int8").validate({"merge": (False, True)})


@pytest.mark.parametrize(
    ("settings", "space", "message"),
    [
        ({"quantize": "qat"}, None, r"^study\.objective\.quantize='qat': use none or int8"),
        ({"merge": "yes"}, None, r"^study\.objective\.merge='yes': use true or false$"),
        ({}, {"quantize": ("fp16",)}, r"^study\.space\.quantize offers quantize='fp16': use none"),
        ({}, {"merge": (1,)}, r"^study\.space\.merge offers merge=1: use true or false$"),
        ({}, {"merged": (True,)}, r"^study\.space\.merged is not a setting of the LoRA objective"),
        ({"latency_batch_repeats": 0}, None, r"latency_batch_repeats=0 is not a whole number"),
    ],
)
def test_bad_serving_settings_are_one_line_before_the_first_trial(settings, space, message):
    refused = _refusal(LoRAObjective(**settings), space)
    assert refused is not None and len(str(refused).splitlines()) == 1
    assert re.search(message, str(refused)), str(refused)


@pytest.mark.slow
def test_int8_without_merge_ends_the_command_in_one_line_with_exit_2(tmp_path: Path) -> None:
    unmerged_int8 = "+study.objective.quantize=int8"  # the study fixes merge to false
    off = ("tracking.enabled=false", "progress=false")
    done = hpo("study=lora_intents", unmerged_int8, *off, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: study.objective.quantize='int8': {UNMERGED_INT8}"], done.stderr
    assert not (tmp_path / "optuna.journal").exists()  # refused before the study was opened


def _refusal(objective: LoRAObjective, space: dict | None) -> BadSetting | None:
    try:
        objective.validate(space)
    except BadSetting as err:
        return err
    return None
