"""The intents generator: distractors and typos, and ``python -m hpo.data`` writing JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hpo.data.intents import CLOSERS, FILLERS, OPENERS, SLOTS, TEMPLATES, generate_intents


def test_utterances_carry_typos_and_distractors() -> None:
    texts, _, _ = generate_intents(0)
    vocabulary = {w for t in TEMPLATES.values() for s in t for w in s.split()}
    words = [w.lower().strip(",?!") for t in texts for w in t.split()]
    openers = [o for o in OPENERS if o]
    closers = [c for c in CLOSERS if c]
    assert sum(any(t.lower().startswith(o) for o in openers) for t in texts) > len(texts) / 3
    assert sum(any(t.endswith(c) for c in closers) for t in texts) > len(texts) / 3
    assert sum(any(f" {f} " in t for f in FILLERS) for t in texts) > len(texts) / 20
    # a typo makes a word found in no template nor slot list; numbers are order references
    known = vocabulary | {w for v in SLOTS.values() for s in v for w in s.split()}
    known |= {w for s in OPENERS + CLOSERS + FILLERS for w in s.split()}
    odd = [w for w in words if w not in known and not w.strip("#").isdigit()]
    assert len(odd) > len(texts) / 10


def test_the_command_writes_the_generated_intents(tmp_path: Path) -> None:
    out = tmp_path / "intents.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "hpo.data", str(out), "3"], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    texts, labels, groups = generate_intents(3)
    assert rows == [
        {"text": t, "label": lb, "group": g} for t, lb, g in zip(texts, labels, groups, strict=True)
    ]
