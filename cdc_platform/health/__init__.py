"""Keeping pipelines running and showing how they run: the Connect sensor, checks and metrics."""
