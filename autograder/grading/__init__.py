"""Grading many submissions: where each one is graded (executors) and how a worker's death is attributed."""
