"""recsys-pipeline: a DVC + MLflow pipeline that trains and compares movie recommenders (`recsys` is its command)."""
