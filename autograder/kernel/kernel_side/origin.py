"""Where code comes from: the student's cells, or a library (torch, the standard library, the probe)."""

from __future__ import annotations

import linecache
import os
import sys

import torch

class CodeOrigin:
    """Tells student code (notebook cells, files it wrote) from library code (the Python environment)."""

    def __init__(self, library_roots, grader_root=None):
        self.roots = tuple(str(r).rstrip("/") + "/" for r in library_roots if r)
        self.grader = str(grader_root).rstrip("/") + "/" if grader_root else None  # the autograder package

    def is_grader(self, frame):
        """Code of the autograder package (the probe, its guard and hooks), not of a library or the student."""
        return self.grader is not None and frame is not None and frame.f_code.co_filename.startswith(self.grader)

    def is_student(self, frame):
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        if filename.startswith("<"):
            return filename.startswith("<ipython-input")  # <frozen ...>, <string> (generated code)
        return not filename.startswith(self.roots)

    def student_caller(self, frame, through=("contextlib", "functools", "inspect")):
        """The first frame from `frame` upwards that is not plumbing, if it is student code. Plumbing:
        frames of the modules in `through`, or every library frame if `through` is None."""
        while frame is not None and (
                not self.is_student(frame) if through is None
                else frame.f_globals.get("__name__", "").split(".")[0] in through):
            frame = frame.f_back
        return frame if self.is_student(frame) else None

    @staticmethod
    def where(frame):
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        return f"line {frame.f_lineno}: {line[:120]}" if line else f"line {frame.f_lineno}"


def default_origin():
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__),
             os.path.dirname(os.path.dirname(torch.__file__))}
    roots.update(p for p in sysconfig.get_paths().values())
    try:
        roots.update(site.getsitepackages())
    except AttributeError:
        pass
    grader = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the autograder package
    roots.add(grader)
    return CodeOrigin(sorted({os.path.realpath(r) for r in roots} | roots), os.path.realpath(grader))
