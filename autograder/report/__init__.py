"""What a batch leaves for instructors: the grader's records, the gradebook, results JSON and feedback."""
