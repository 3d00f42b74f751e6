"""The platform's own Dagster resource: settings every asset, check, sensor and job shares.

Kept apart from the asset builders so that jobs, sensors and checks depend on the settings, not on
the module that builds pipeline assets (which is what tied them in an import circle).
"""

import dagster as dg


class CdcSettingsResource(dg.ConfigurableResource):
    """Where the specs live and which Kafka the connectors' schema-history topics use."""

    specs_dir: str
    kafka_bootstrap: str
    #: Jolokia agent in the Connect JVM, for Debezium's and Connect's metrics; empty: not read
    jolokia_url: str = ""
