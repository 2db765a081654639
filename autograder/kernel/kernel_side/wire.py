"""The bytes of a probe request or answer: a pickle of the value with every plain tensor taken out, then the
tensors' raw bytes. Both ends use it: the grader writes requests and reads answers, the kernel the other way.

    b"TGW1" | pickle length (4 bytes) | pickle | tensor bytes

Each tensor in the pickle is a persistent id `(dtype name, shape, offset, byte count, requires_grad)` into the
tensor bytes. An answer comes from student code, so it is read with `trusted=False`: an unpickler that refuses
every global (nothing but None, bools, numbers, strings, bytes and containers can be built) and accepts only
persistent ids that describe a dense tensor lying inside the bytes it came with. What is read is then decoded
strictly by `codec.from_plain`. (torch.save and torch.load's weights-only reader took three quarters of a
millisecond per call for this, a tenth of the time of a guarded call of a small function.)
"""

from __future__ import annotations

import io
import pickle
import struct

import torch

MAGIC = b"TGW1"
_Pickler, _Unpickler, _UnpicklingError = pickle.Pickler, pickle.Unpickler, pickle.UnpicklingError
_frombuffer, _empty, _tensor_type, _uint8, _strided = torch.frombuffer, torch.empty, torch.Tensor, torch.uint8, torch.strided
_u32 = struct.Struct("!I")
WIRE_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
                                   torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                   torch.bool)}
ITEM_BYTES = {name: torch.empty((), dtype=d).element_size() for name, d in WIRE_DTYPES.items()}
MAX_DIMS = 32
ALIGN = 64  # each tensor's bytes start at a multiple of this in the tensor bytes


class WireError(ValueError):
    """Bytes that are not a probe message."""


class _TensorPickler(_Pickler):
    def __init__(self, file):
        super().__init__(file, protocol=5)
        self.chunks, self.size, self.ids = [], 0, {}

    def persistent_id(self, obj):
        if type(obj) is not _tensor_type or obj.layout != _strided or str(obj.dtype) not in WIRE_DTYPES:
            return None  # anything else pickles as itself (a request's Parameter: its data comes back here)
        known = self.ids.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        flat = obj.detach().to("cpu").contiguous().reshape(-1)
        raw = flat.view(_uint8).numpy().tobytes() if flat.numel() else b""
        pid = (str(obj.dtype), tuple(int(d) for d in obj.shape), self.size, len(raw), bool(obj.requires_grad))
        self.chunks.append(raw + bytes(-len(raw) % ALIGN))
        self.size += len(raw) + (-len(raw) % ALIGN)
        self.ids[id(obj)] = (obj, pid)
        return pid


def wire_encode(value):
    """`value` as the bytes of one probe message."""
    buffer = io.BytesIO()
    pickler = _TensorPickler(buffer)
    pickler.dump(value)
    head = buffer.getvalue()
    return b"".join([MAGIC, _u32.pack(len(head)), head, *pickler.chunks])


class _Reader(_Unpickler):
    def __init__(self, file, blob, trusted):
        super().__init__(file)
        self.blob, self.trusted, self.made = blob, trusted, {}

    def find_class(self, module, name):
        if not self.trusted:
            raise _UnpicklingError(f"a global ({module}.{name}) in an answer")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) != 5:
            raise _UnpicklingError("a malformed tensor reference")
        dtype_name, shape, offset, size, requires_grad = pid
        dtype = WIRE_DTYPES.get(dtype_name) if type(dtype_name) is str else None
        if (dtype is None or type(shape) is not tuple or len(shape) > MAX_DIMS
                or any(type(d) is not int or d < 0 for d in shape) or type(offset) is not int
                or type(size) is not int or type(requires_grad) is not bool):
            raise _UnpicklingError("a malformed tensor reference")
        if pid in self.made:  # the same tensor again: the same object, as it was sent
            return self.made[pid]
        count = 1
        for d in shape:
            count *= d
        if count * ITEM_BYTES[dtype_name] != size or offset < 0 or offset + size > len(self.blob):
            raise _UnpicklingError("a tensor reference that does not match the bytes sent with it")
        tensor = _frombuffer(self.blob, dtype=dtype, count=count, offset=offset).reshape(shape) if count \
            else _empty(shape, dtype=dtype)
        if requires_grad:
            tensor.requires_grad_(True)
        self.made[pid] = tensor
        return tensor


def wire_decode(data, trusted):
    """The value of one probe message; `trusted=False` for what a kernel sent (see the module's notes)."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise WireError("not a probe message")
    (length,) = _u32.unpack(data[4:8])
    if 8 + length > len(data):
        raise WireError("a probe message cut short")
    blob = bytearray(data[8 + length:])  # the tensors own (share) this copy, writable
    try:
        return _Reader(io.BytesIO(data[8:8 + length]), blob, trusted).load()
    except WireError:
        raise
    except Exception as exc:  # whatever a malformed pickle raises
        raise WireError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
