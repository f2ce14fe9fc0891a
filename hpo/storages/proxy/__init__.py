"""``python -m hpo.storages.proxy storage=postgres``: Optuna's gRPC storage proxy, with hpo's locks.

``server`` builds the gRPC server (Optuna's storage servicer, hpo's study lock
and heartbeats beside it, database outages told as UNAVAILABLE); ``command``
is the entry point, composing the same storage config as ``python -m hpo``.
Workers reach it with ``storage=grpc`` (hpo/storages/grpc.py). Nothing here is
imported when a worker starts: gRPC is loaded only where it is used.
"""
