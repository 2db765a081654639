"""One exception root for everything torchgrade reports as an error."""

from __future__ import annotations

from pathlib import Path


class TorchgradeError(Exception):
    """Root of torchgrade's errors; carries the file it is about, when there is one."""

    def __init__(self, message: str, path: Path | str | None = None):
        self.path = Path(path) if path is not None else None
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)


class ConfigError(TorchgradeError):
    """An assignment's configuration, notebook markers or checks are wrong."""


class InvalidSubmission(TorchgradeError):
    """A submission is not a readable notebook."""

    @classmethod
    def from_exception(cls, path: Path, exc: Exception) -> "InvalidSubmission":
        text = str(exc).strip().replace(str(path), Path(path).name).splitlines()  # no grader path in feedback
        return cls(f"not a readable notebook ({type(exc).__name__}: {text[0] if text else ''})", path)


class ProbeError(TorchgradeError):
    """The grader could not get an answer from the student's kernel."""


class BuildError(TorchgradeError):
    """`torchgrade assign` built a bundle that does not prove itself."""
