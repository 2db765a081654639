"""The `torchgrade` command line: the parser (`parser.py`), then the command that runs (`commands.py`)."""

from .parser import main

__all__ = ["main"]
