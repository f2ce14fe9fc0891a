"""Shared helpers of the benchmark scripts: config composition, run timing, tables."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # so Hydra can import benchmarks.noop from any CWD
    sys.path.insert(0, str(REPO))


def quiet() -> None:
    """Keep Optuna, MLflow and Alembic to warnings; no per-trial chatter in the tables."""
    import mlflow  # noqa: F401  (configures its loggers on import: do that before we lower them)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "alembic", "hpo"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


_COMPOSED: dict[tuple[str, ...], Any] = {}


def compose(overrides: Sequence[str]) -> Any:
    """The typed hpo config for ``overrides``, composed exactly as ``python -m hpo`` would.

    Composed once per set of overrides and copied afterwards: conf/ and studies/
    are read when a script starts, not between repeats, so a file edited while a
    benchmark runs cannot mix two versions of the config into one table.
    """
    key = tuple(overrides)
    if key not in _COMPOSED:
        from hydra import compose as hydra_compose
        from hydra import initialize_config_dir

        from hpo.config import CONF_DIR, register_configs, typed

        register_configs()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            _COMPOSED[key] = typed(hydra_compose("config", overrides=list(key)))
    return copy.deepcopy(_COMPOSED[key])


def placed(cfg: Any, tmp: Path, n_trials: int) -> Any:
    """``cfg`` with its Optuna journal and MLflow store in ``tmp`` and ``n_trials`` trials."""
    cfg.storage.url = f"journal:{tmp / 'optuna.journal'}"
    cfg.tracking.uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg.study.n_trials = n_trials
    return cfg


def revision() -> str:
    """The commit benchmarked, marked +dirty when hpo/objectives/conf/studies have edits."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "hpo", "objectives", "conf", "studies")
    return head + ("+dirty" if dirty else "")


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A fresh temporary directory, also the CWD while inside, so nothing lands in the repo."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


@dataclass
class Phases:
    """Wall seconds of one run split at the loop's edges (None where they could not be seen)."""

    total: float = 0.0
    startup: float | None = None  # plan, storage, tracker, study: before the first claim
    loop: float | None = None  # first claim .. start of finish()
    drain: float = 0.0  # in finish(): waiting for trial writes queued during the loop
    end: float | None = None  # the rest of finish(): summary, plots, refit + log_model
    cpu: float | None = None  # user + system CPU seconds, this process and reaped children
    result: Any = None

    @property
    def trials_wall(self) -> float:
        """What the trials cost: the loop plus the drain of their queued writes."""
        return (self.loop if self.loop is not None else self.total) + self.drain


@dataclass
class _Marks:
    first_claim: float | None = None
    finish_start: float | None = None
    drain: float | None = None


def run_hpo(
    cfg: Any,
    on_loop_start: Callable[[], Any] | None = None,
    on_loop_end: Callable[[], Any] | None = None,
) -> Phases:
    """``hpo.runner.run(cfg)``, timed; the loop is found by wrapping ``claim`` and ``finish``.

    The wrappers are installed at runtime only (nothing is edited) and removed
    afterwards. ``on_loop_start`` runs at the first claim (before it),
    ``on_loop_end`` when finish() is entered, e.g. to profile only the loop.
    Where the tracker queues trial writes to another process, the first
    ``Tracker.flush()`` inside finish() waits for them: that wait is ``drain``.
    """
    import hpo.runner.loop as hs
    import hpo.tracking.tracker as ht

    marks = _Marks()
    orig_claim, orig_finish = hs.claim, hs.finish
    orig_flush = getattr(ht.Tracker, "flush", None)

    def claim(*args: Any, **kwargs: Any) -> Any:
        if marks.first_claim is None:
            marks.first_claim = time.perf_counter()
            if on_loop_start is not None:
                on_loop_start()
        return orig_claim(*args, **kwargs)

    def finish(*args: Any, **kwargs: Any) -> Any:
        if on_loop_end is not None and marks.finish_start is None:
            on_loop_end()
        marks.finish_start = time.perf_counter()
        return orig_finish(*args, **kwargs)

    def flush(*args: Any, **kwargs: Any) -> Any:
        if marks.finish_start is None or marks.drain is not None:
            return orig_flush(*args, **kwargs)  # type: ignore[misc]
        started = time.perf_counter()
        try:
            return orig_flush(*args, **kwargs)  # type: ignore[misc]
        finally:
            marks.drain = time.perf_counter() - started

    hs.claim, hs.finish = claim, finish  # type: ignore[assignment]
    if orig_flush is not None:
        ht.Tracker.flush = flush  # type: ignore[method-assign]
    cpu = cpu_seconds()
    start = time.perf_counter()
    try:
        result = hs.run(cfg)
    finally:
        stop = time.perf_counter()
        hs.claim, hs.finish = orig_claim, orig_finish  # type: ignore[assignment]
        if orig_flush is not None:
            ht.Tracker.flush = orig_flush  # type: ignore[method-assign]
        if on_loop_end is not None and marks.finish_start is None:
            on_loop_end()
    phases = Phases(total=stop - start, cpu=cpu_seconds() - cpu, result=result)
    if marks.first_claim is not None and marks.finish_start is not None:
        phases.startup = marks.first_claim - start
        phases.loop = marks.finish_start - marks.first_claim
        phases.drain = marks.drain or 0.0
        phases.end = stop - marks.finish_start - phases.drain
    return phases


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Probes:
    """Inclusive wall time and call count of chosen functions, counted only while ``active``.

    Functions are wrapped on their module or class at runtime and put back by
    ``restore()``; a wrapper costs about a microsecond per call.
    """

    def __init__(self) -> None:
        self.active = False
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        self.seconds.setdefault(label, 0.0)
        self.calls.setdefault(label, 0)
        orig = getattr(owner, attr, None)
        if orig is None:  # not in this version of the code: the row stays at zero
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return orig(*args, **kwargs)
            started = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, orig))

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def restore(self) -> None:
        for owner, attr, orig in reversed(self._undo):
            setattr(owner, attr, orig)
        self._undo.clear()


def load_space(study: str) -> dict[str, Any]:
    """The ``space`` mapping of studies/<study>.yaml, read as plain YAML."""
    import yaml

    text = (REPO / "studies" / f"{study}.yaml").read_text()
    return dict(yaml.safe_load(text)["space"])


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """A study's space through plain trial.suggest_* calls (same types, ranges, log flags)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind, log = spec["type"], bool(spec.get("log", False))
        if kind == "int":
            params[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)), log=log
            )
        elif kind == "float":
            step = spec.get("step")
            params[name] = trial.suggest_float(
                name,
                float(spec["low"]),
                float(spec["high"]),
                step=float(step) if step is not None else None,
                log=log,
            )
        else:
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
    return params


def load() -> str:
    """The machine's 1-minute load average, to judge how noisy the timings are."""
    try:
        return f"{os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)"
    except OSError:
        return "unknown"


def med(values: Sequence[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return statistics.median(seen) if seen else None


def spread(values: Sequence[float | None], scale: float = 1.0, digits: int = 1) -> str:
    """``median [min-max]`` of the values times ``scale``; '-' when there are none."""
    seen = [v * scale for v in values if v is not None]
    if not seen:
        return "-"
    m = statistics.median(seen)
    if len(seen) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{min(seen):.{digits}f}-{max(seen):.{digits}f}]"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Plain-text table; columns in ``right`` are right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def rotate(items: Sequence[str], by: int) -> list[str]:
    """The variants in a different order each repeat, so no variant always runs first."""
    k = by % len(items)
    return [*items[k:], *items[:k]]
