"""Compression side by side: the uncompressed best MLP against int8, QAT, pruned and distilled.

    python -m benchmarks.compression                           # mlp_digits, 12-trial search
    python -m benchmarks.compression --trials 30 --repeats 15  # a longer search, steadier timings
    python -m benchmarks.compression --params '{"n_layers": 2, "width": 128}'   # no search
    python -m benchmarks.compression --prune 0.3 0.5 0.9 --student-width 8 32 --no-qat

1. The uncompressed best: a short search of the study (``--trials`` trials of
   its own space, sampler and pruner, seed ``--seed``, MLflow off), or the
   configuration given with ``--params``.
2. Each compression applied to that configuration, the rest of it unchanged:
   dynamic int8; QAT (``qat_epochs`` of the study, 3 by default); L1 pruning
   of each ``--prune`` amount, unstructured with 2 fine-tune epochs, and of
   whole neurons (structured) at the first amount; a distilled student (one
   hidden layer of each ``--student-width``, T and alpha from
   ``--temperature`` and ``--alpha``) whose fold teacher is the uncompressed
   best itself, trained on each fold's training rows; and the same student
   with no teacher, to tell what distillation adds.
3. Every variant is cross-validated on the study's folds (the same folds, seed
   and training for all, folds one at a time): macro-F1 is the mean over
   folds, and "vs uncompressed" is its difference from the uncompressed row (the
   int8, QAT and pruned rows train exactly as it does, then compress).
4. Every variant is refit on all rows (as the study's logged model is) and the
   refits are measured side by side: ``--repeats`` rounds, the variants in a
   rotated order each round, each round objectives/compression/measure.py's
   latency (median of 25 calls at batch 1 and of 10 at batch 64 after 3
   warm-up calls, one torch thread), ``model_kb`` (torch.save of the state,
   what ships) and the inference peak (resident-memory growth at batch 64).
   Latencies are the median [min-max] over rounds; peak memory is the
   largest (a small model's often rounds to 0: pages it needs are resident).

Timings depend on the machine and its load (printed); read them as a ranking.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import (
    compose,
    load,
    placed,
    quiet,
    revision,
    rotate,
    scratch,
    spread,
    table,
)

PRUNE_FINETUNE = 2  # epochs of fine-tuning with the mask on, unstructured pruning


@dataclasses.dataclass
class Variant:
    """One row: the settings that differ from the uncompressed best, and what it measured."""

    name: str
    params: dict[str, Any]
    value: float = 0.0  # the study metric, mean over folds
    std: float = 0.0
    facts: dict[str, float] = dataclasses.field(default_factory=dict)  # CV, mean over folds
    model: Any = None  # the refit on all rows
    b1: list[float] = dataclasses.field(default_factory=list)
    b64: list[float] = dataclasses.field(default_factory=list)
    peak: list[float] = dataclasses.field(default_factory=list)
    shipped: dict[str, float] = dataclasses.field(default_factory=dict)  # the refit's facts


def search(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str]:
    """The config, the uncompressed best's parameters, and where they came from."""
    from hpo.runner import run

    cfg = compose([f"study={args.study}", f"seed={args.seed}", "progress=false"])
    cfg.tracking.enabled = False
    if args.params:
        return cfg, json.loads(args.params), "given with --params"
    with scratch("compression-") as tmp:
        summary = run(placed(cfg, tmp, args.trials))
    if summary is None or summary.best_number is None:
        raise SystemExit(f"error: the search of {args.study} found no best trial")
    counts = ", ".join(f"{n} {s.lower()}" for s, n in summary.counts.items() if n)
    said = f"best of {args.trials} trials ({counts}), trial {summary.best_number}"
    return cfg, dict(summary.best_params), said


def variants(args: argparse.Namespace, teacher: str) -> list[Variant]:
    """The uncompressed best, then each compression of it (module docs); ``teacher`` says
    what the best is (layers x width), the distilled students' teacher."""
    rows = [Variant("uncompressed", {}), Variant("int8 (dynamic)", {"quantize": "int8"})]
    if args.qat:
        rows.append(Variant("qat", {"quantize": "qat"}))
    for amount in args.prune:
        pruned = {"prune_amount": amount, "prune_finetune_epochs": PRUNE_FINETUNE}
        rows.append(Variant(f"pruned {amount:.0%} (+{PRUNE_FINETUNE} ep)", pruned))
    if args.prune:
        neurons = {"prune_amount": args.prune[0], "prune_kind": "l1_structured"}
        neurons["prune_finetune_epochs"] = PRUNE_FINETUNE
        rows.append(Variant(f"pruned {args.prune[0]:.0%} neurons (+{PRUNE_FINETUNE} ep)", neurons))
    for width in args.student_width:
        student = {"n_layers": 1, "width": width}
        taught = {
            **student,
            "distill_teacher": "fold",
            "distill_temperature": args.temperature,
            "distill_alpha": args.alpha,
        }
        rows.append(Variant(f"distilled 1x{width} (teacher {teacher})", taught))
        rows.append(Variant(f"student 1x{width}, no teacher", student))
    return rows


def the_objective(plan: Any, best: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The study's objective with the best's knobs as its fixed settings (a fold teacher is
    then the best itself, at its width and depth), and the params left to give per trial."""
    from objectives.mlp.knobs import MLPKnobs

    knobs = {f.name for f in dataclasses.fields(MLPKnobs)}
    fixed = {k: v for k, v in best.items() if k in knobs}
    teacher = {"distill_teacher_width": fixed.get("width", plan.objective.width)}
    teacher["distill_teacher_layers"] = fixed.get("n_layers", plan.objective.n_layers)
    objective = dataclasses.replace(plan.objective, **fixed, **teacher)
    return objective, {k: v for k, v in best.items() if k not in knobs}


def evaluate(args: argparse.Namespace, cfg: Any, best: dict[str, Any]) -> list[Variant]:
    """Cross-validate and refit every variant, then measure the refits side by side."""
    from hpo.cv import cross_validate
    from hpo.runner import make_plan
    from objectives.compression.measure import measure

    plan = make_plan(cfg)
    objective, rest = the_objective(plan, best)
    setup = dataclasses.replace(plan.cv_setup, n_jobs=1)  # folds one at a time: quiet timings
    rows = []
    teacher = f"{objective.n_layers}x{objective.width}"
    for row in variants(args, teacher):
        params = {**rest, **row.params}
        try:
            objective.knobs(params)
        except ValueError as refused:  # QAT with silu, say
            print(f"# {row.name}: skipped, {refused}")
            continue
        scored = cross_validate(objective, params, setup)
        row.value, row.std, row.facts = scored.value, scored.std, scored.fit_facts
        data = plan.data
        row.model = objective.refit(
            params, data.X, data.y, data.n_classes, scored.fit_facts, plan.seed
        )
        rows.append(row)
    X = plan.data.X
    for repeat in range(args.repeats):
        order = rotate([r.name for r in rows], repeat)
        for row in sorted(rows, key=lambda r: order.index(r.name)):
            facts = measure(row.model, X)
            row.b1.append(facts["latency_ms_b1"])
            row.b64.append(facts["latency_ms_b64"])
            row.peak.append(facts["inference_peak_kb"])
            row.shipped = facts
    return rows


def report(rows: Sequence[Variant], metric: str) -> str:
    base = rows[0].value
    headers = [
        "model",
        f"{metric} (CV)",
        "vs uncompressed",
        "b1 ms [range]",
        "b64 ms [range]",
        "kB",
        "peak kB",
        "zeros",
        "params",
    ]
    lines = [
        [
            r.name,
            f"{r.value:.4f} ± {r.std:.4f}",
            f"{r.value - base:+.4f}",
            spread(r.b1, digits=3),
            spread(r.b64, digits=3),
            f"{r.shipped['model_kb']:.1f}",
            f"{max(r.peak):.0f}",
            f"{r.shipped['zero_weight_fraction']:.0%}",
            f"{r.facts.get('n_params', 0):.0f}",
        ]
        for r in rows
    ]
    return table(headers, lines, right=set(range(1, len(headers))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default="mlp_digits", help="an MLP study (classification)")
    parser.add_argument("--trials", type=int, default=12, help="of the search for the best")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", default="", help="the best as JSON: no search")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of latency measurement")
    parser.add_argument("--prune", type=float, nargs="*", default=[0.5, 0.8], help="amounts")
    parser.add_argument("--student-width", type=int, nargs="*", default=[16, 32])
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--no-qat", dest="qat", action="store_false")
    args = parser.parse_args()
    quiet()
    started = time.perf_counter()
    cfg, best, said = search(args)
    rows = evaluate(args, cfg, best)
    wall = time.perf_counter() - started
    print(f"# {args.study}, rev {revision()}, load {load()}")
    print(f"# uncompressed best: {said}: {json.dumps(best)}")
    print(
        f"# {len(rows)} variants, the same {cfg.study.cv.scheme} folds; latency over "
        f"{args.repeats} interleaved rounds on the refits; {wall:.0f} s in all"
    )
    print(report(rows, cfg.study.metric))
    b1 = {r.name: statistics.median(r.b1) for r in rows}
    print(f"# fastest at batch 1: {min(b1, key=b1.__getitem__)}")


if __name__ == "__main__":
    main()
