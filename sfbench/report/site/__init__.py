"""``sfbench report``: the static site of a results folder (leaderboard, claims, runs, curves, probes)."""
