"""What differs per engine kind (PostgreSQL, MySQL/MariaDB, SQL Server, S3), answered in one place.

``kinds`` holds the facts every layer asks: which pairs have a copy path, which sources a target
takes, the engine's tag in the UI, and each target's traits (does the platform create its tables,
does a Kafka Connect sink or the platform's own writer apply its changes, which checks apply).
Code that behaves differently per target asks a trait here rather than comparing kind names, so a
new target kind is its own module plus one registry entry. Imports nothing of the platform.
"""
