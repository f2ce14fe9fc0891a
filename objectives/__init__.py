"""Objectives: one module per model family. Each turns (params, one fold) into predictions."""
