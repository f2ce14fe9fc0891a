"""Sampler and pruner options checked against the types their constructors declare.

Hydra builds a sampler or pruner from whatever its YAML and the overrides say,
and Optuna's constructors take a value of the wrong type without a word (every
trial then fails on it): an option of the wrong type is refused here instead,
in one line naming the key and the type it wants.
"""

from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_class

from hpo.errors import UserError

SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
}
TYPE_NAMES = {"int": "a whole number", "float": "a number", "bool": "true or false"}


def check_types(options: dict[Any, Any], group: str) -> None:
    """Refuse an option whose value is not of the type the constructor declares.

    Optuna's constructors take ``n_startup_trials='abc'`` without a word, and
    every trial then fails on it; annotations naming only int, float, bool, str
    and None are checked here, others (callables, samplers) are left to Optuna.
    """
    try:
        parameters = inspect.signature(get_class(str(options.get("_target_")))).parameters
    except Exception:
        return  # no such class: instantiate names it
    for key, value in options.items():
        if key not in parameters:
            continue  # instantiate refuses an unknown option by name
        annotation = parameters[key].annotation
        if isinstance(annotation, type):
            annotation = annotation.__name__
        if not isinstance(annotation, str):
            continue
        names = [part.strip() for part in annotation.split("|")]
        if not all(name in SIMPLE_TYPES for name in names):
            continue
        allowed = tuple(t for name in names for t in SIMPLE_TYPES[name])
        if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
            continue
        wanted = " or ".join(
            TYPE_NAMES.get(name, "null" if name == "None" else f"a {name}") for name in names
        )
        raise UserError(
            f"{group}.{key}={value!r} is not {wanted}: set {group}.{key} to {wanted} "
            f"(see --cfg job for the {group}'s options)"
        )
