"""The probe channel's framing: a JSON header and a payload, each behind its length, within a deadline.

The kernel side reads and writes the same frames (`kernel_side/server.py`). An answer over the size limit is
read and thrown away (`AnswerTooLarge`), so the channel stays in step and the kernel is not taken for dead.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from typing import Any

MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # the most one answer may carry


def send_frame(sock: socket.socket, header: dict[str, Any], payload: bytes, deadline: float) -> None:
    """A JSON header and a payload, each behind its length (the kernel side reads `kernel_side.read_frame`)."""
    head = json.dumps(header).encode()
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        sock.sendall(struct.pack("!II", len(head), len(payload)) + head + payload)
    except socket.timeout:
        raise TimeoutError from None


class AnswerTooLarge(ValueError):
    """An answer over the size limit arrived; it was read and thrown away, so the channel is still in step."""


def recv_frame(sock: socket.socket, deadline: float, gone=lambda: False,
               limit: int = MAX_RESPONSE_BYTES) -> tuple[dict[str, Any], bytes]:
    head_size, size = struct.unpack("!II", _recv_exact(sock, 8, deadline, gone))
    if head_size > 65536:
        raise ValueError("a malformed answer header")
    header = json.loads(_recv_exact(sock, head_size, deadline, gone))
    if not isinstance(header, dict):
        raise ValueError("a malformed answer header")
    if size > limit:
        _discard(sock, size, deadline, gone)
        raise AnswerTooLarge(f"the answer was {size / 2**20:.0f} MiB, over the {limit / 2**20:g} MiB limit on what "
                             "one answer may carry")
    return header, _recv_exact(sock, size, deadline, gone)


def _discard(sock: socket.socket, n: int, deadline: float, gone) -> None:
    while n:
        n -= len(_recv_exact(sock, min(n, 1 << 20), deadline, gone))


def _recv_exact(sock: socket.socket, n: int, deadline: float, gone) -> bytes:
    chunks, left = [], n
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0:
            raise TimeoutError
        ready, _, _ = select.select([sock], [], [], min(wait, 0.25))
        if not ready:
            if gone():
                raise EOFError("the kernel is gone")
            continue
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the kernel closed the probe channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
