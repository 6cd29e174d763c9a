"""Profiling passes apart from timed runs: memray, py-spy, cold-start attribution, stack dumps of hung cells."""
