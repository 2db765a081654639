"""Imported first by the workers' fork server (`warm.py`): the collector stays off while the server imports the
grader (`kernel/heap.py`), until `prewarm`, imported last, freezes what was imported and turns it back on."""

from ..kernel.heap import pause_collection

pause_collection()
