"""Evaluation: metrics (pure functions), the report, and the comparison of MLflow runs."""
