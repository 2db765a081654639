"""torchgrade: autograding for PyTorch courses."""

__version__ = "0.1.0"
