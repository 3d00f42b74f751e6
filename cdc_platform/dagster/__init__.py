"""The Dagster wiring, and the only floor that builds Dagster definitions: the settings resource,
the translator (the one authority on keys), each pipeline's specs and keys, the multi-asset, the
results-to-metadata, the stored catalog, the component, and the builders of every check, sensor,
schedule and job (health, metrics, alerts, connection tests, quality, the S3 writer, teardown).

What these run lives in the floors below (pipeline, operations, quality, s3); nothing below imports
from here.
"""
