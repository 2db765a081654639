"""Imported last by the workers' fork server (`warm.py`): what each worker's first submission would pay for on its
own (nbformat's validator, a first figure drawn) is paid once there, before any worker is forked, instead of on a
thread of each worker that competes with its first submission. Then what the server imported is frozen and the
collector turned back on (`prewarm_start`): the workers forked from it collect without walking torch."""

from ..kernel.heap import resume_collection

try:
    import torch

    from .pipeline import warm_up

    torch.set_num_threads(1)  # as each worker has it: the warm-up's few tensor operations start no thread pool
    warm_up(figures=True)
finally:
    resume_collection()
