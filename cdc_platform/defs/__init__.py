"""This project's defs folder (``dg`` project): the pipeline component instance and the by-name teardown job."""
