"""The student's self-check, under the import path every handed-out notebook's first cell names.

`from autograder.selfcheck import Grader` is written into student notebooks (and so into submissions) by
every version of `assign`; the self-check itself lives in `build/selfcheck.py`.
"""

from .build.selfcheck import Grader

__all__ = ["Grader"]
