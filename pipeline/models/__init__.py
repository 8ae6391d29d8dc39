"""Recommender models: pure NumPy/TensorFlow, no MLflow or DVC inside."""
