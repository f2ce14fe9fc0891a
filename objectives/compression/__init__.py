"""Shrinking a trained torch model for serving, and measuring what it costs to serve.

One job per module, each on torch's own utilities:

| module        | job                                                                     |
|---------------|-------------------------------------------------------------------------|
| ``quantize``  | dynamic int8 (``quantize_dynamic``) and eager-mode quantization-aware   |
|               | training (``prepare_qat`` ... ``convert``), and what QAT cannot do      |
| ``prune``     | L1 magnitude pruning, unstructured or whole neurons, made permanent     |
| ``distill``   | a teacher's soft targets at a temperature, the distillation loss, and   |
|               | the teachers (an MLflow model URI, or one trained per fold) cached      |
| ``measure``   | latency at batch 1 and 64, serialized size, inference memory, sparsity |

Nothing here knows an objective's knobs: the MLP objective strings these
steps together (objectives/mlp/compress.py).
"""
