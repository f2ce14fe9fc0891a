"""One line for each user mistake (hpo/cli.py), from the exceptions Hydra really raises."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException

from hpo.cli import composition_error, fail, look_command, missing_option
from hpo.config import CONF_DIR


def error_of(*overrides: str) -> BaseException:
    raised = (ConfigCompositionException, MissingConfigException)
    with (
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"),
        pytest.raises(raised) as err,
    ):
        compose("config", overrides=["study=xgb_f1", *overrides])
    return err.value


def test_a_renamed_key_names_its_new_name() -> None:
    line = composition_error(error_of("finish=false"))
    assert line == (
        "unknown key 'finish': finish=false is now trials_only=true (this process runs trials only)"
    )


def test_a_misspelt_key_names_the_closest_one() -> None:
    assert "did you mean study.n_trials=" in composition_error(error_of("study.n_trails=3"))


def test_an_unknown_group_option_lists_the_options() -> None:
    err = error_of("sampler=foo")
    assert isinstance(err, MissingConfigException)
    line = missing_option(err)
    assert line.startswith("unknown sampler 'foo': choose sampler= one of") and "tpe" in line


def test_fail_prints_one_masked_line_and_exits_with_the_status(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        fail("cannot open postgresql://u:hunter2@h/db", status=1)
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hunter2" not in err and err.startswith("error: ")


def test_the_look_command_keeps_what_finds_the_study_s_stores() -> None:
    argv = [
        "study=xgb_f1",
        "study.n_trials=5",
        "storage=postgres",
        "storage.url=postgresql://me:hunter2@db/hpo",
        "+tracking.artifact_location=/srv/a",
        "sampler=random",
        "progress=false",
    ]
    assert look_command(argv) == (
        "python -m hpo.ui study=xgb_f1 storage=postgres storage.url=postgresql://me:***@db/hpo "
        "+tracking.artifact_location=/srv/a"
    )
