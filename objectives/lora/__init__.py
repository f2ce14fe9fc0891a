"""The LoRA objective (``objectives.lora.LoRAObjective``, as the studies name it) and its parts.

A model folder is local or it is an error: this package sets HF_HUB_OFFLINE
and TRANSFORMERS_OFFLINE before transformers is imported by any of its
modules, so nothing is ever fetched from a hub.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import warnings

import transformers

from objectives.lora.classifier import LoRAClassifier
from objectives.lora.knobs import LoRAKnobs
from objectives.lora.model import default_model_path
from objectives.lora.objective import LoRAObjective

transformers.logging.set_verbosity_error()  # the "newly initialized head" notice, every trial
transformers.logging.disable_progress_bar()  # "Loading weights": one bar per fold
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

__all__ = ["LoRAClassifier", "LoRAKnobs", "LoRAObjective", "default_model_path"]
