"""Data sources, the normalized schema, and validation suites."""
