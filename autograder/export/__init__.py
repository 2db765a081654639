"""Exports of an assignment for other platforms: a Gradescope autograder zip (`gradescope.py`), the scripts it
runs (`scripts.py`) and the grading it does inside Gradescope's container (`gradescope_run.py`)."""
