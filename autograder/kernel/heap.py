"""Importing torch without the cyclic garbage collector.

`import torch` creates about a million objects that live as long as the process, and the collector, counting
allocations, runs a full collection now and then meanwhile: each walks every object imported so far, a tenth of a
second apiece late in the import, about a fifth of the import's time in all (and a third of IPython's after it).
Imports make almost no garbage, so whoever imports the heavy stack at start-up (the zygote, the workers' fork server,
a one-job batch) does so with the collector off, then freezes what it imported (`gc.freeze`): later collections,
there and in every process forked from it, skip those objects rather than walk them again.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


def pause_collection() -> bool:
    """Turn the collector off; whether it was on (for `resume_collection`)."""
    enabled = gc.isenabled()
    gc.disable()
    return enabled


def resume_collection(enabled: bool = True) -> None:
    """Freeze everything allocated so far, then turn the collector back on if it was."""
    gc.freeze()
    if enabled:
        gc.enable()


@contextmanager
def imports_without_collection() -> Iterator[None]:
    enabled = pause_collection()
    try:
        yield
    finally:
        resume_collection(enabled)
