"""What a cell may leave behind in the grader: every IOPub message counted against the cell's output cap.

nbclient keeps what a kernel publishes (streams, displays, errors, display updates, widget messages) in the
grader's memory. A notebook that publishes without end would grow the grader without end, so every message
of a cell (whatever its type: `error`, `update_display_data` and `comm_*` included) is counted against the
cell's cap; past it, messages are dropped, an error is kept as its name and a short value (the grader needs to
know the cell raised), and the cell says where it was cut. A single message over `MAX_MESSAGE_BYTES` is
refused by ZeroMQ (`ReadyClient` in provisioner.py) before it is read into Python at all, and ZeroMQ holds
at most `MAX_QUEUED_MESSAGES` unread.
"""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

MAX_MESSAGE_BYTES = 8 << 20  # one kernel message, any channel: larger ones never reach the grader's Python
MAX_QUEUED_MESSAGES = 64  # messages ZeroMQ holds unread for the grader (beyond them a flood is dropped at the
# kernel's end): with the size limit, a flood can hold at most 512 MiB in flight, however long it lasts
KEPT = ("status", "execute_input")  # never dropped: they say when a cell is done, and cost nothing
MAX_ERROR_TEXT = 2000


class CappedClient(NotebookClient):
    """nbclient's client with a cap on everything one cell may publish."""

    output_limit: int = 256 * 1024

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] in KEPT:
            return super().process_message(msg, cell, cell_index)
        sizes = self.__dict__.setdefault("_output_sizes", {})
        used = sizes.get(cell_index, 0)
        size = message_size(msg)
        sizes[cell_index] = used + size
        if used + size <= self.output_limit:
            return super().process_message(msg, cell, cell_index)
        if used <= self.output_limit:
            cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stderr",
                text=f"\n[torchgrade: output of this cell cut at {self.output_limit // 1024} KiB]\n"))
        if msg["msg_type"] == "error" and not any(o.get("output_type") == "error" for o in cell.outputs):
            content = msg["content"]
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename=str(content.get("ename", "Error"))[:200],
                evalue=str(content.get("evalue", ""))[:MAX_ERROR_TEXT], traceback=[]))
        return None


def message_size(msg) -> int:
    """About how many bytes a message keeps in memory (its content, as text)."""
    return len(str(msg.get("content", ""))) + len(str(msg.get("metadata", "")))
