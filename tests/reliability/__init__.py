"""Reliability harness: crash, concurrency, disk-full, secrets and bad-data families, with a scorecard."""
