"""hpo/names.py: every name hpo writes into MLflow and Optuna, each spelt once and only there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hpo
from hpo import names

PACKAGE = Path(hpo.__file__).parent
CONSTANTS = {k: v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
TAGS = {k: v for k, v in CONSTANTS.items() if k.endswith("_TAG")}
ATTRS = {k: v for k, v in CONSTANTS.items() if k.endswith("_ATTR")}
TAG_NAME = re.compile(r"hpo(\.[a-z][a-z0-9_]*)+\.?")  # a tag, or a prefix of tags ("hpo.x.")
# Names spelt outside names.py today (file, name): each should become a constant there, and
# then leave this list; a name found that is not listed is a new literal, and fails.
KNOWN_TAGS: set[tuple[str, str]] = set()  # (module, literal) pairs allowed: none
KNOWN_ATTRS: set[tuple[str, str]] = set()


def test_every_constant_has_a_value_of_its_own() -> None:
    """Two constants with one value would make two meanings share one stored name."""
    by_value: dict[str, list[str]] = {}
    for key, value in CONSTANTS.items():
        by_value.setdefault(value, []).append(key)
    assert {v: k for v, k in by_value.items() if len(k) > 1} == {}


def test_there_are_tags_and_attrs_to_check() -> None:
    assert {"STATE_TAG", "TRIAL_TAG", "ORPHAN_TAG"} <= set(TAGS)
    assert {"PARENT_ATTR", "RUN_ATTR", "METRIC_ATTR"} <= set(ATTRS)


def test_every_mlflow_tag_is_an_hpo_dotted_name() -> None:
    """``hpo.`` keeps them apart from MLflow's own ``mlflow.*`` tags; lower-case dotted
    words are valid MLflow tag keys that need no quoting beyond backticks in a filter."""
    ours = {k: v for k, v in TAGS.items() if v not in names.MLFLOW_OWN}
    bad = {k: v for k, v in ours.items() if not re.fullmatch(r"hpo(\.[a-z][a-z0-9_]*)+", v)}
    assert bad == {}
    assert all(v.startswith("mlflow.") for v in names.MLFLOW_OWN), "MLflow's own, for its UI"
    assert re.fullmatch(r"hpo(\.[a-z_]+)+\.", names.CHAMPION_PREFIX), "a prefix ends in a dot"


def test_no_tag_is_taken_by_the_champion_prefix() -> None:
    """Every key under hpo.champion. belongs to the champion's decision."""
    assert [v for v in TAGS.values() if v.startswith(names.CHAMPION_PREFIX)] == []


def test_optuna_attrs_are_plain_identifiers() -> None:
    """User attrs are JSON keys read back by name: no hpo prefix, no dots."""
    bad = {k: v for k, v in ATTRS.items() if not v.isidentifier() or v.startswith("hpo")}
    assert bad == {}


def test_the_nightly_tags_share_one_prefix() -> None:
    nightly = {k: v for k, v in TAGS.items() if k.startswith("NIGHTLY_")}
    assert len(nightly) >= 5
    assert all(v.startswith("hpo.nightly.") for v in nightly.values())


def _literals(tree: ast.AST) -> set[str]:
    """String constants, and the leading text of f-strings, that look like an hpo tag name."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            texts = [head.value] if isinstance(head, ast.Constant) else []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts = [node.value]
        else:
            continue
        found.update(t for t in texts if isinstance(t, str) and TAG_NAME.fullmatch(t))
    return found


def _module_names() -> set[str]:
    """hpo's modules and packages (``hpo.check``, ``hpo.storages.``): logger names, not tags."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.update({".".join(parts), ".".join(parts) + "."})
    return modules


def test_no_module_but_names_spells_an_hpo_tag() -> None:
    modules = _module_names()
    spelt = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "names.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(PACKAGE.parent).as_posix()
        spelt.update((where, text) for text in _literals(tree) - modules)
    assert spelt == KNOWN_TAGS, "use (or add) a constant in hpo/names.py"


def test_the_literal_finder_finds_tags_but_not_module_names() -> None:
    """The test above would pass vacuously if the finder found nothing."""
    source = (
        'client.set_tag(run, "hpo.state", "KILLED")\n'
        'client.set_tag(run, f"hpo.night.{day}", "x")\n'
        'log = logging.getLogger("hpo.storages")\n'
        'message = "no hpo.trial tag"\n'
    )
    assert _literals(ast.parse(source)) - _module_names() == {"hpo.state", "hpo.night."}


def _attr_literals(tree: ast.AST) -> set[str]:
    """User attr names spelt as literals: ``set_user_attr("x", ...)``, ``user_attrs["x"]``,
    ``user_attrs.get("x")``. System attrs are Optuna's own (``retry_history``)."""
    attrs = ("user_attrs",)
    found = set()
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            key = node.slice if node.value.attr in attrs else None
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            on_attrs = isinstance(func.value, ast.Attribute) and func.value.attr in attrs
            if func.attr == "set_user_attr" or (func.attr == "get" and on_attrs):
                key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.add(key.value)
    return found


def test_no_module_but_names_spells_an_optuna_attr() -> None:
    spelt = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != PACKAGE / "names.py":
            where = path.relative_to(PACKAGE.parent).as_posix()
            tree = ast.parse(path.read_text(), str(path))
            spelt.update((where, key) for key in _attr_literals(tree))
    assert spelt == KNOWN_ATTRS, "use (or add) a constant in hpo/names.py"


def test_the_attr_finder_finds_literal_keys_only() -> None:
    source = (
        'study.set_user_attr("space", fp)\n'
        'trial.user_attrs["worker"]\n'
        'study.user_attrs.get("data")\n'
        "study.user_attrs.get(PARENT_ATTR)\n"
        'config.get("metric")\n'
        'trial.system_attrs.get("retry_history")\n'
    )
    assert _attr_literals(ast.parse(source)) == {"space", "worker", "data"}
