"""The MLP as one torch module: scaler, layers, and the output that turns logits into scores.

The scaler is fit on the training rows only and lives in the module
(``Pipeline``), so the model logged to MLflow takes raw features. Initial
weights draw from the fold's generator, so a trial is reproducible even when
folds train side by side in threads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from objectives.mlp.knobs import ACTIVATIONS, MLPKnobs
from objectives.torch_fit import GeneratorDropout


class Pipeline(nn.Module):
    """Standardize raw features, run the network, return scores: the whole model as one module.

    Scores are what the CV harness and the metrics expect: P(class 1) for
    binary tasks, class probabilities for multi-class, values for regression
    (the network learns a standardized target; this undoes it).
    """

    x_mean: torch.Tensor
    x_scale: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        kind: str,
        x_mean: np.ndarray,
        x_scale: np.ndarray,
        y_mean: float = 0.0,
        y_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.kind = kind
        self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))
        self.register_buffer("x_scale", torch.as_tensor(x_scale, dtype=torch.float32))
        self.y_mean = y_mean
        self.y_scale = y_scale

    def standardize(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.x_mean) / self.x_scale

    def target(self, y: np.ndarray) -> torch.Tensor:
        """The target in the loss's terms: class ids, 0/1 floats, or standardized values."""
        if self.kind == "multiclass":
            return torch.as_tensor(y, dtype=torch.long)
        return torch.as_tensor(
            (np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_scale, dtype=torch.float32
        )

    def loss_fn(self) -> nn.Module:
        return {"multiclass": nn.CrossEntropyLoss, "binary": nn.BCEWithLogitsLoss}.get(
            self.kind, nn.MSELoss
        )()

    def logits(self, Z: torch.Tensor) -> torch.Tensor:
        """The network's output on standardized features, squeezed to a vector for one output."""
        out = self.net(Z)
        return out if self.kind == "multiclass" else out.squeeze(-1)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "multiclass":
            return torch.softmax(logits, dim=-1)
        if self.kind == "binary":
            return torch.sigmoid(logits)
        return logits * self.y_scale + self.y_mean

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.scores(self.logits(self.standardize(X.float())))


def build_network(
    knobs: MLPKnobs, n_in: int, n_out: int, generator: torch.Generator
) -> nn.Sequential:
    """Linear -> norm -> activation -> dropout per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    width_in = n_in
    for width in knobs.layer_widths():
        layers.append(nn.Linear(width_in, width))
        if knobs.norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        elif knobs.norm == "layer":
            layers.append(nn.LayerNorm(width))
        layers.append(ACTIVATIONS[knobs.activation]())
        if knobs.dropout > 0:
            layers.append(GeneratorDropout(knobs.dropout))
        width_in = width
    layers.append(nn.Linear(width_in, n_out))
    net = nn.Sequential(*layers)
    initialize(net, knobs, generator)
    return net


def initialize(net: nn.Module, knobs: MLPKnobs, generator: torch.Generator) -> None:
    """He (Kaiming) or Xavier (Glorot) weights, zero biases; ``auto`` matches the activation.

    He keeps the variance through ReLU-like units (relu, gelu, silu), Xavier
    through symmetric ones (tanh), whose gain torch's calculate_gain supplies.
    """
    scheme = knobs.init
    if scheme == "auto":
        scheme = "xavier" if knobs.activation == "tanh" else "he"
    gain = nn.init.calculate_gain("tanh" if knobs.activation == "tanh" else "relu")
    for module in net.modules():
        if isinstance(module, nn.Linear):
            if scheme == "he":
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            else:
                nn.init.xavier_uniform_(module.weight, gain=gain, generator=generator)
            nn.init.zeros_(module.bias)


def predict_scores(model: Pipeline, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(X, dtype=torch.float32)).numpy().astype(np.float64)
