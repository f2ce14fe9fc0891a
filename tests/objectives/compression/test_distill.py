"""Distillation: soft targets at a temperature, the loss against a hand computation, teachers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from objectives.compression.distill import (
    Distillation,
    TeacherCache,
    class_logits,
    class_probabilities,
    distill_loss,
    fingerprint,
    is_teacher,
    soft_targets,
)

TEACHER = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
STUDENT = torch.tensor([[1.0, 0.5, -1.0], [0.0, 2.0, 0.3]])
HARD = torch.tensor(0.8)


def by_hand(teacher: np.ndarray, student: np.ndarray, hard: float, T: float, alpha: float) -> float:
    """alpha * T^2 * mean over rows of sum_k q_k log(q_k / s_k) + (1 - alpha) * hard."""
    q = teacher ** (1 / T)
    q = q / q.sum(axis=1, keepdims=True)
    s = np.exp(student / T)
    s = s / s.sum(axis=1, keepdims=True)
    kl = float(np.mean(np.sum(q * np.log(q / s), axis=1)))
    return alpha * T * T * kl + (1 - alpha) * hard


def test_soft_targets_are_the_teachers_probabilities_to_the_power_one_over_t():
    for T in (0.5, 1.0, 4.0):
        expected = TEACHER ** (1 / T) / (TEACHER ** (1 / T)).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(soft_targets(TEACHER, T).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(soft_targets(TEACHER, 1.0).numpy(), TEACHER, rtol=1e-5)
    flat = soft_targets(TEACHER, 100.0).numpy()
    assert np.allclose(flat, 1 / 3, atol=0.01), "a high temperature spreads the mass"


@pytest.mark.parametrize(("T", "alpha"), [(1.0, 0.5), (2.0, 0.7), (4.0, 1.0), (3.0, 0.0)])
def test_the_loss_is_alpha_t2_kl_of_the_soft_targets_plus_the_hard_loss(T, alpha):
    soft = soft_targets(TEACHER, T)
    got = float(distill_loss(STUDENT, soft, HARD, T, alpha))
    assert got == pytest.approx(by_hand(TEACHER, STUDENT.numpy(), 0.8, T, alpha), rel=1e-5)


def test_changing_the_temperature_changes_the_loss():
    losses = [
        float(distill_loss(STUDENT, soft_targets(TEACHER, T), HARD, T, 1.0)) for T in (1, 2, 5)
    ]
    assert len({round(v, 6) for v in losses}) == 3


def test_a_binary_students_logit_is_the_class_pair_zero_z():
    z = torch.tensor([0.3, -1.2])
    pair = class_logits(z)
    torch.testing.assert_close(torch.softmax(pair, dim=-1)[:, 1], torch.sigmoid(z))
    p = np.array([0.8, 0.1])  # a binary teacher's P(class 1)
    teacher = class_probabilities(p, 2)
    np.testing.assert_allclose(teacher, [[0.2, 0.8], [0.9, 0.1]])
    got = float(distill_loss(z, soft_targets(teacher, 2.0), HARD, 2.0, 0.5))
    assert got == pytest.approx(by_hand(teacher, pair.numpy(), 0.8, 2.0, 0.5), rel=1e-5)


def test_the_loss_learns_towards_the_teacher():
    logits = torch.zeros(2, 3, requires_grad=True)
    soft = soft_targets(TEACHER, 2.0)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(200):
        optimizer.zero_grad()
        distill_loss(logits, soft, torch.tensor(0.0), 2.0, 1.0).backward()
        optimizer.step()
    torch.testing.assert_close(F.softmax(logits / 2.0, dim=-1), soft, atol=1e-3, rtol=1e-3)


def test_a_batch_takes_the_soft_targets_of_its_own_rows():
    teacher = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    distill = Distillation.of(teacher, 2, 2.0, 1.0)
    rows = torch.tensor([2, 0])
    logits = torch.tensor([[0.1, 0.2], [1.0, -1.0]])
    expected = distill_loss(logits, soft_targets(teacher[[2, 0]], 2.0), HARD, 2.0, 1.0)
    torch.testing.assert_close(distill.loss(logits, HARD, rows), expected)


def test_a_teacher_with_other_classes_is_refused_naming_the_knob():
    with pytest.raises(
        ValueError, match="gives 3 classes where the data has 4: set distill_teacher"
    ):
        class_probabilities(TEACHER, 4)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("none", True),
        ("fold", True),
        ("models:/teacher/3", True),
        ("runs:/0123abcd/best_model", True),
        ("models:/", False),
        ("http://host/model", False),
        ("", False),
        (None, False),
        (3, False),
    ],
)
def test_a_teacher_is_none_fold_or_an_mlflow_model_uri(value, ok):
    assert is_teacher(value) is ok


def test_a_teacher_is_made_once_per_key_even_when_asked_for_at_once():
    cache = TeacherCache(size=2)
    made: list[str] = []

    def make(key: str) -> str:
        time.sleep(0.05)  # long enough for the other threads to ask meanwhile
        made.append(key)
        return key.upper()

    threads = [threading.Thread(target=cache.get, args=("a", lambda: make("a"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["a"]
    assert cache.get("a", lambda: make("again")) == "A"
    cache.get("b", lambda: make("b"))
    cache.get("c", lambda: make("c"))  # over the size: the least recently used goes
    assert cache.get("a", lambda: make("a")) == "A"
    assert made == ["a", "b", "c", "a"]


def test_the_fingerprint_tells_folds_apart():
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    assert fingerprint(X, y) == fingerprint(X.copy(), y.copy())
    assert fingerprint(X, y) != fingerprint(X[:3], y[:3])
    assert fingerprint(X, y) != fingerprint(X, 1 - y)
