"""S3 as a target: Parquet snapshot and change files, written by the platform itself."""
