"""The bytes of probe messages: a structure, then the raw bytes of the tensors it holds.

Requests (grader → kernel) are the grader's own: a pickle whose plain tensors are persistent ids into the bytes
after it (`wire_encode`, `wire_decode`); the kernel trusts them.

Answers (kernel → grader) come from student code: JSON, never a pickle (`answer_encode`, `answer_decode`).

    b"TGA1" | JSON length (4 bytes) | JSON (at most 8 MiB) | tensor bytes

Every JSON object is a record `{"__wire__": kind, ...}` with exactly its kind's keys: `dict` (its items as
[key, value] pairs, keys strings), `tuple` (its items) and `tensor` (dtype, shape, offset, size: a dense tensor
whose bytes lie after the JSON, each at a multiple of `ALIGN`, in order, none overlapping). Reading one builds
nothing but None, bools, numbers, strings, lists, tuples, dicts and plain tensors, each tensor a copy of its own
bytes; what is read is then decoded strictly by `codec.from_plain`. (A pickle reader, even one that resolves no
global, lets an answer call `Tensor.__setstate__` through BUILD, grow its memo to gigabytes from a few bytes, or
make dict keys collide: JSON has no such opcodes, and its keys are strings, hashed with a random seed.)
"""

from __future__ import annotations

import io
import json
import math
import pickle
import struct

import torch

MAGIC = b"TGW1"
ANSWER_MAGIC = b"TGA1"
_Pickler, _Unpickler = pickle.Pickler, pickle.Unpickler
_frombuffer, _zeros, _tensor_type, _uint8, _strided = torch.frombuffer, torch.zeros, torch.Tensor, torch.uint8, torch.strided
_dumps, _loads = json.dumps, json.loads
_u32 = struct.Struct("!I")
WIRE_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
                                   torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                   torch.bool)}
WIRE_DTYPES.update({str(d): d for d in (getattr(torch, name, None) for name in (  # where this torch has them
    "uint16", "uint32", "uint64", "complex32", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"))
    if isinstance(d, torch.dtype)})
ITEM_BYTES = {name: d.itemsize for name, d in WIRE_DTYPES.items()}
MAX_DIMS = 32
MAX_DIM = 2 ** 40  # a dimension of a tensor with no elements may be large, not endless
MAX_STRUCTURE_BYTES = 8 * 2**20  # an answer's JSON; its tensors' bytes come after it
MAX_VALUES = 1_000_000  # values in an answer's JSON, counted before it is read: a million empty lists are 80 MB
ALIGN = 64  # each tensor's bytes start at a multiple of this in the tensor bytes


class WireError(ValueError):
    """Bytes that are not a probe message."""


class TooLarge(ValueError):
    """An answer over what one answer may carry (values, or structure bytes): refused in the kernel, as the
    answer to the call that made it, never sent."""


def too_many_values():
    return TooLarge(f"a value of over {MAX_VALUES} items (list and dict entries, numbers, strings), over what one "
                    "answer may carry")


def _tensor_bytes(obj):
    """The bytes of a dense tensor of a wire dtype, in row-major order."""
    flat = obj.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(_uint8).numpy().tobytes() if flat.numel() else b""


def _padded(raw):
    return raw + bytes(-len(raw) % ALIGN)


def _wire_tensor(obj):
    return type(obj) is _tensor_type and obj.layout == _strided and str(obj.dtype) in WIRE_DTYPES


# ----------------------------------------------------------------------------------------- requests (trusted)

class _TensorPickler(_Pickler):
    def __init__(self, file):
        super().__init__(file, protocol=5)
        self.chunks, self.size, self.ids = [], 0, {}

    def persistent_id(self, obj):
        if not _wire_tensor(obj):
            return None  # anything else pickles as itself (a request's Parameter: its data comes back here)
        known = self.ids.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        raw = _tensor_bytes(obj)
        pid = (str(obj.dtype), tuple(int(d) for d in obj.shape), self.size, len(raw), bool(obj.requires_grad))
        self.chunks.append(_padded(raw))
        self.size += len(self.chunks[-1])
        self.ids[id(obj)] = (obj, pid)
        return pid


def wire_encode(value):
    """A request as the bytes of one probe message."""
    buffer = io.BytesIO()
    pickler = _TensorPickler(buffer)
    pickler.dump(value)
    head = buffer.getvalue()
    return b"".join([MAGIC, _u32.pack(len(head)), head, *pickler.chunks])


class _RequestReader(_Unpickler):
    def __init__(self, file, blob):
        super().__init__(file)
        self.blob, self.made = blob, {}

    def persistent_load(self, pid):
        if pid not in self.made:  # the same tensor again: the same object, as it was sent
            dtype_name, shape, offset, size, requires_grad = pid
            count = size // ITEM_BYTES[dtype_name]
            dtype = WIRE_DTYPES[dtype_name]
            tensor = _frombuffer(self.blob, dtype=dtype, count=count, offset=offset).reshape(shape) if count \
                else _zeros(shape, dtype=dtype)
            self.made[pid] = tensor.requires_grad_(True) if requires_grad else tensor
        return self.made[pid]


def wire_decode(data):
    """A request the grader wrote (the kernel trusts the grader: this is a full unpickler)."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise WireError("not a probe request")
    (length,) = _u32.unpack(data[4:8])
    blob = bytearray(data[8 + length:])  # the tensors share this copy, writable
    return _RequestReader(io.BytesIO(data[8:8 + length]), blob).load()


# ------------------------------------------------------------------------------------------ answers (untrusted)

def answer_encode(plain):
    """An answer (`to_plain`'s tagged plain data) as the bytes of one probe message."""
    chunks, offset = [], 0

    def walk(obj, depth=0):
        nonlocal offset
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"__wire__": "float", "value": repr(obj)}
        if kind is list:
            return [walk(x, depth + 1) for x in obj]
        if kind is tuple:
            return {"__wire__": "tuple", "items": [walk(x, depth + 1) for x in obj]}
        if kind is dict:
            return {"__wire__": "dict", "items": [[str(k), walk(v, depth + 1)] for k, v in obj.items()]}
        if _wire_tensor(obj):
            raw = _tensor_bytes(obj)
            record = {"__wire__": "tensor", "dtype": str(obj.dtype), "shape": [int(d) for d in obj.shape],
                      "offset": offset, "size": len(raw)}
            chunks.append(_padded(raw))
            offset += len(chunks[-1])
            return record
        raise TypeError(f"a {kind.__name__} in an answer")  # to_plain makes none: the probe's own failure

    text = _dumps(walk(plain), separators=(",", ":"), allow_nan=False)
    if _values_in(text) > MAX_VALUES:  # what `answer_decode` would refuse
        raise too_many_values()
    head = text.encode("utf-8")
    if len(head) > MAX_STRUCTURE_BYTES:
        raise TooLarge(f"a value of {len(head) / 2**20:.0f} MiB of lists, dicts, numbers and strings, over the "
                       f"{MAX_STRUCTURE_BYTES // 2**20} MiB of them one answer may carry")
    return b"".join([ANSWER_MAGIC, _u32.pack(len(head)), head, *chunks])


class _AnswerRecords:
    """The JSON reader's object hook: each object must be a wire record, each tensor in order within the bytes."""

    KEYS = {"dict": {"__wire__", "items"}, "tuple": {"__wire__", "items"}, "float": {"__wire__", "value"},
            "tensor": {"__wire__", "dtype", "shape", "offset", "size"}}

    def __init__(self, blob):
        self.blob, self.end = blob, 0

    def __call__(self, obj):
        kind = obj.get("__wire__")
        if type(kind) is not str or self.KEYS.get(kind) != set(obj):
            raise WireError("an object that is no wire record")
        if kind == "float":
            if obj["value"] not in ("nan", "inf", "-inf"):
                raise WireError("a malformed float")
            return float(obj["value"])
        if kind != "tensor":
            items = obj["items"]
            if type(items) is not list:
                raise WireError(f"a malformed {kind}")
            if kind == "tuple":
                return tuple(items)
            if not all(type(i) is list and len(i) == 2 and type(i[0]) is str for i in items):
                raise WireError("a malformed dict")
            return dict(items)
        return self.tensor(obj["dtype"], obj["shape"], obj["offset"], obj["size"])

    def tensor(self, dtype_name, shape, offset, size):
        dtype = WIRE_DTYPES.get(dtype_name) if type(dtype_name) is str else None
        if (dtype is None or type(shape) is not list or len(shape) > MAX_DIMS
                or not all(type(d) is int and 0 <= d <= MAX_DIM for d in shape)
                or type(offset) is not int or type(size) is not int):
            raise WireError("a malformed tensor record")
        count = 0 if 0 in shape else 1
        for d in shape:
            count *= d
            if count * ITEM_BYTES[dtype_name] > len(self.blob):
                raise WireError("a tensor record larger than the bytes sent")
        if (count * ITEM_BYTES[dtype_name] != size or offset < self.end or offset % ALIGN
                or offset + size > len(self.blob)):
            raise WireError("a tensor record that does not match the bytes sent with it")
        self.end = offset + size
        if not count:
            return _zeros(shape, dtype=dtype)
        return _frombuffer(bytearray(self.blob[offset:offset + size]), dtype=dtype).reshape(shape)


def answer_decode(data):
    """The plain data of an answer a kernel sent (see the module's notes); `WireError` if it is not one."""
    if len(data) < 8 or bytes(data[:4]) != ANSWER_MAGIC:
        raise WireError("not a probe answer")
    (length,) = _u32.unpack(bytes(data[4:8]))
    if length > MAX_STRUCTURE_BYTES:
        raise WireError(f"an answer's structure of {length // 2**20} MiB (at most {MAX_STRUCTURE_BYTES // 2**20} MiB)")
    if 8 + length > len(data):
        raise WireError("an answer cut short")
    view = memoryview(data)
    try:
        text = bytes(view[8:8 + length]).decode("utf-8")
        if _values_in(text) > MAX_VALUES:
            raise WireError(f"an answer of over {MAX_VALUES} values")
        return _loads(text, object_hook=_AnswerRecords(view[8 + length:]), parse_constant=_no_constant)
    except WireError:
        raise
    except Exception as exc:  # malformed JSON, text, numbers over Python's digit limit, nesting too deep
        raise WireError(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _values_in(text):
    """The values of an answer's JSON, over-estimated (commas in strings count): the same count on both sides."""
    return text.count(",") + text.count("[") + text.count("{")


def _no_constant(name):
    raise WireError(f"a bare {name} (non-finite floats travel as records)")
