"""Which versions of the packages a trial's value rests on are installed here.

Recorded on a study's parent run when it is created (tags under
``hpo.names.VERSION_PREFIX``), so that ``python -m hpo.replay`` can say when
a replay runs on other versions than the study did.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, packages_distributions, version

# Import names of the packages that compute a trial's value (MLflow only records it).
WATCHED = ("numpy", "optuna", "sklearn", "xgboost", "torch", "peft", "transformers")


def installed(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def watched_installed() -> list[tuple[str, str]]:
    """(distribution, version) of each WATCHED package installed (xgboost may be the
    distribution xgboost-cpu)."""
    providers = packages_distributions()
    found = []
    for module in WATCHED:
        for dist in dict.fromkeys(providers.get(module, [])):
            now = installed(dist)
            if now is not None:
                found.append((dist, now))
    return found
