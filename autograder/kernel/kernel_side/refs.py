"""Our own references to what the probe uses, taken before any student code runs (rebinding `os.write`
or `torch.save` in a notebook reaches none of them), and the limits of plain data."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import sys
import threading
import time

import torch

MAX_REPR = 300
MAX_DEPTH = 6
TAG = "__tg__"
_IOLOOP_READ = 1  # tornado.ioloop.IOLoop.READ

# Our own references, taken before any student code runs.
_write, _read = os.write, os.read
_pack, _unpack = struct.pack, struct.unpack
_json_dumps, _json_loads = json.dumps, json.loads
_signal, _SIGINT, _default_int_handler = signal.signal, signal.SIGINT, signal.default_int_handler
_getframe = sys._getframe
_setprofile, _getprofile = sys.setprofile, sys.getprofile
_torch_save, _torch_load = torch.save, torch.load
_stack_len, _stack_at = torch._C._len_torch_dispatch_stack, torch._C._get_dispatch_stack_at
_stack_pop = torch._C._pop_torch_dispatch_stack
_perf_counter = time.perf_counter
_sha256 = hashlib.sha256
_enumerate_threads = threading.enumerate
_main_thread = threading.main_thread


class Flags:
    """What the library guard and the audit hook share: one per process (or per private copy)."""

    suspicious = False  # the notebook ran code it built at run time: guarded calls are watched closely
