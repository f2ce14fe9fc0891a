"""Runnable benchmark scripts (not tests): ``python -m benchmarks.overhead``, ``.xgb_cost``."""
