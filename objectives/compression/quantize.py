"""Int8 quantization of a network's linear layers: dynamic, or quantization-aware training.

- ``int8``: torch.ao's dynamic quantization. Weights are stored as int8 once;
  each batch's activations are quantized on the fly, so nothing is calibrated
  or trained. The cheapest way to a smaller, often faster, CPU model.
- ``qat``: torch.ao's eager-mode quantization-aware training. The network is
  wrapped in QuantStub/DeQuantStub, Linear+BatchNorm1d pairs are fused (eager
  mode has no quantized batch norm of its own), ``prepare_qat`` inserts fake
  quantization, a few epochs of training teach the weights to live with int8
  rounding, and ``convert`` makes weights and activations int8.

Both run on torch's quantized CPU engine (``torch.backends.quantized.engine``:
x86 or fbgemm on Intel/AMD, qnnpack on ARM); without one they are refused up
front. Eager QAT runs every layer on quantized tensors, so an activation with
no quantized kernel (silu, measured on torch 2.13) is refused up front too.
torch 2.13 warns (a DeprecationWarning) that torch.ao.quantization is
deprecated in favour of torchao; it is still torch's own, shipped and working
API here, and the only one that needs no other package.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.ao import quantization as tq

QUANTIZE = ("none", "int8", "qat")
# Activations that run on quantized tensors after ``convert`` (relu, gelu and tanh have
# quantized kernels; silu has none: "Could not run 'aten::silu.out' ... 'QuantizedCPU'").
QAT_ACTIVATIONS = ("relu", "gelu", "tanh")


def engine() -> str | None:
    """The quantized engine int8 runs on here (torch's current one), or None if there is none."""
    current = torch.backends.quantized.engine
    if current == "none" or current not in torch.backends.quantized.supported_engines:
        return None
    return current


def refusal(quantize: str, activation: str) -> tuple[str, str] | None:
    """Why ``quantize`` cannot run here with ``activation``: (what it is not, the fix), or None."""
    if quantize == "none":
        return None
    if engine() is None:
        supported = ", ".join(torch.backends.quantized.supported_engines)
        return (
            f"possible on this torch build (no quantized CPU engine: {supported})",
            "set quantize to none",
        )
    if quantize == "qat" and activation not in QAT_ACTIVATIONS:
        return (
            f"possible with activation={activation!r} (eager-mode QAT has no quantized "
            f"{activation})",
            f"use activation {', '.join(QAT_ACTIVATIONS)}, or quantize int8 (dynamic)",
        )
    return None


def dynamic_int8(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every nn.Linear swapped for torch.ao's dynamic int8 Linear."""
    with _torch_notes():
        return tq.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8, inplace=False)


def prepare_qat(net: nn.Sequential) -> nn.Sequential:
    """``net`` wrapped in quant/dequant stubs, Linear+BatchNorm1d fused, fake-quantized to train.

    The result is in training mode: a few epochs of ordinary training on it
    are the quantization-aware training; ``convert_qat`` then makes it int8.
    """
    wrapped = nn.Sequential(tq.QuantStub(), net, tq.DeQuantStub())
    wrapped.train()
    pairs = [
        [f"1.{i}", f"1.{i + 1}"]
        for i in range(len(net) - 1)
        if isinstance(net[i], nn.Linear) and isinstance(net[i + 1], nn.BatchNorm1d)
    ]
    if pairs:
        tq.fuse_modules_qat(wrapped, pairs, inplace=True)
    wrapped.qconfig = tq.get_default_qat_qconfig(engine() or "x86")
    with _torch_notes():
        return tq.prepare_qat(wrapped, inplace=True)


def convert_qat(net: nn.Module) -> nn.Module:
    """The int8 network a quantization-aware-trained ``net`` stands for (weights, activations)."""
    net.eval()
    with _torch_notes():
        return tq.convert(net, inplace=False)


@contextlib.contextmanager
def _torch_notes() -> Iterator[None]:
    """torch.ao's notes to its own developers (quantized tensor creation deprecated, observers'
    ``reduce_range``) would print on every trial: they say nothing a study can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*reduce_range.*", category=UserWarning)
        yield
