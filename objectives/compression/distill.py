"""Knowledge distillation: a student trained on a teacher's soft targets as well as on the labels.

The loss of a batch (Hinton, Vinyals and Dean, 2015) is::

    alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * hard-label loss

where ``student_T`` is softmax(student logits / T) and ``teacher_T`` the
teacher's probabilities softened at the same T: p^(1/T), renormalised (the
softmax of log p / T, since a teacher here gives probabilities, not logits).
A higher T spreads the teacher's mass over the wrong classes, which is what
the student learns from; T^2 keeps that term's gradients on the scale of the
hard term's whatever T is. The KL term is torch's ``F.kl_div(log student_T,
teacher_T)``, the batch mean of sum over classes of
teacher_T * (log teacher_T - log student_T). A binary student's one logit z
is the pair of class logits (0, z), since sigmoid(z) = softmax(0, z)[1].

The teacher is either:

- an MLflow model URI (``models:/NAME/VERSION``, ``runs:/RUN_ID/best_model``),
  loaded once per process with ``mlflow.pyfunc`` and kept (``uri_teacher``).
  A teacher trained on all of a data set (the best model of another study)
  has seen every fold's validation rows: the student's validation scores are
  then optimistic, since what it learns from the teacher leaks those rows.
- ``fold``: trained by the objective on the fold's training rows only, so it
  never sees the rows the student is scored on (honest), and kept per fold
  (``TeacherCache``) so every trial of the study reuses it.

Classification only: a regression target has no classes to soften.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

TEACHER_URI_SCHEMES = ("models:/", "runs:/")
Made = TypeVar("Made")


def is_teacher(value: Any) -> bool:
    """``none``, ``fold``, or an MLflow model URI (``models:/...``, ``runs:/...``)."""
    if not isinstance(value, str):
        return False
    if value in ("none", "fold"):
        return True
    return any(value.startswith(s) and len(value) > len(s) for s in TEACHER_URI_SCHEMES)


def class_probabilities(scores: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, k) class probabilities from a classifier's scores: binary P(1) becomes (1 - p, p)."""
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.shape[1] != max(n_classes, 2):
        raise ValueError(
            f"the distillation teacher gives {p.shape[1]} classes where the data has "
            f"{n_classes}: set distill_teacher to a classifier of this data set, or fold"
        )
    return p


def soft_targets(probabilities: np.ndarray, temperature: float) -> torch.Tensor:
    """The teacher's probabilities softened at ``temperature``: p^(1/T), renormalised per row."""
    p = torch.as_tensor(probabilities, dtype=torch.float32).clamp_min(1e-12)  # log 0 is -inf
    return torch.softmax(torch.log(p) / temperature, dim=-1)


def class_logits(logits: torch.Tensor) -> torch.Tensor:
    """(n, k) class logits: a binary student's one logit z becomes (0, z)."""
    if logits.ndim == 2:
        return logits
    return torch.stack([torch.zeros_like(logits), logits], dim=-1)


def distill_loss(
    logits: torch.Tensor,
    soft: torch.Tensor,
    hard_loss: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(soft || softmax(logits / T)) + (1 - alpha) * hard_loss (module docs)."""
    log_student = F.log_softmax(class_logits(logits) / temperature, dim=-1)
    soft_loss = F.kl_div(log_student, soft, reduction="batchmean")
    return alpha * temperature**2 * soft_loss + (1.0 - alpha) * hard_loss


@dataclass
class Distillation:
    """What training needs to distill: each training row's soft targets, T and alpha."""

    soft: torch.Tensor  # (n_rows, k), in the order of the rows trained on
    temperature: float
    alpha: float

    @classmethod
    def of(
        cls, teacher_scores: np.ndarray, n_classes: int, temperature: float, alpha: float
    ) -> Distillation:
        """From the teacher's scores (probabilities) for the rows the student trains on."""
        probabilities = class_probabilities(teacher_scores, n_classes)
        return cls(soft_targets(probabilities, temperature), temperature, alpha)

    def loss(
        self, logits: torch.Tensor, hard_loss: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """The batch's distillation loss; ``rows`` index the batch's rows in the training rows."""
        return distill_loss(logits, self.soft[rows], hard_loss, self.temperature, self.alpha)


class TeacherCache:
    """Teachers made once and kept by key (the last ``size``), each made once even when
    folds side by side ask for it at the same moment."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._made: OrderedDict[Hashable, Any] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, make: Callable[[], Made]) -> Made:
        """The teacher kept under ``key``, made with ``make()`` the first time."""
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._made:
                    return self._made[key]
            made = make()
            with self._lock:
                self._made[key] = made
                self._making.pop(key, None)
                while len(self._made) > self.size:
                    self._made.popitem(last=False)
        return made


def fingerprint(*arrays: np.ndarray) -> str:
    """A digest of the arrays' shapes, types and values: the same fold gives the same key."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


URI_TEACHERS = TeacherCache()  # one load per process and URI


def uri_teacher_scores(uri: str, X: np.ndarray) -> np.ndarray:
    """The scores (probabilities) of the teacher logged at ``uri`` for rows ``X``."""
    model = URI_TEACHERS.get(uri, lambda: _load(uri))
    return np.asarray(model.predict(_teacher_input(model, X)), dtype=np.float64)


def _load(uri: str) -> Any:
    """The pyfunc model at ``uri`` (MLflow is imported only when a teacher is given by URI)."""
    import mlflow.pyfunc

    try:
        return mlflow.pyfunc.load_model(uri)
    except Exception as err:  # an MLflow, network or file error: one line for the trial's reason
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"distill_teacher={uri!r} cannot be loaded ({first}): give the models:/ or runs:/ "
            "URI of a classifier logged on this data set, or use distill_teacher=fold"
        ) from None


def _teacher_input(model: Any, X: np.ndarray) -> Any:
    """Rows as the teacher takes them: a frame of the columns its signature names, if any."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return X
    names = schema.input_names()
    if len(names) != X.shape[1]:
        raise ValueError(
            f"the distillation teacher takes {len(names)} columns where the data has "
            f"{X.shape[1]}: set distill_teacher to a model of this data set, or fold"
        )
    import pandas as pd

    return pd.DataFrame(np.asarray(X, dtype=np.float64), columns=names)
