"""Aggregates, paired comparisons and the leaderboard."""
