"""Evaluation: plan shards, roll out episodes on env workers, write records, status and merge."""
