"""What a cell may leave behind: nbclient's client with a cap on the output one cell keeps."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient


class CappedClient(NotebookClient):
    """nbclient's client with a cap on how much output one cell may keep."""

    output_limit: int = 256 * 1024

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        sizes = self.__dict__.setdefault("_output_sizes", {})
        used = sizes.get(cell_index, 0)
        size = len(str(msg["content"]))
        sizes[cell_index] = used + size
        if used + size <= self.output_limit:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.output_limit:
            outs.append(nbformat.v4.new_output(
                "stream", name="stderr",
                text=f"\n[torchgrade: output of this cell cut at {self.output_limit // 1024} KiB]\n"))
        return None
