"""Change Data Capture pipelines (Debezium on Kafka Connect) expressed as Dagster assets."""
