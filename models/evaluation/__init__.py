"""Offline evaluation: splits, metrics, baselines, the pipeline run, output."""
