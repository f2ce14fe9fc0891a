"""LoRA knobs: unknown parameters and impossible settings are refused; alpha and modules."""

from __future__ import annotations

import pytest

from objectives.lora import LoRAObjective


def test_unknown_parameters_and_bad_settings_are_refused() -> None:
    objective = LoRAObjective()
    with pytest.raises(ValueError, match="unknown LoRA parameter"):
        objective.knobs({"rank": 4})
    with pytest.raises(ValueError, match="bias"):
        objective.knobs({"bias": "some"})
    assert objective.knobs({"r": 4, "alpha_ratio": 4.0}).alpha() == 16
    assert objective.knobs({"target_modules": "q_lin, v_lin"}).modules() == ["q_lin", "v_lin"]
