"""Alert rules from config, their evaluation by the alerts sensor, channels (webhook, email, in-app) and history.

Reads the metrics store and check outcomes; never reaches up into the Dagster wiring.
"""
