-- Runs once, when the postgres service's volume is empty: the demo's databases and the Dagster
-- instance's (dagster-postgres storage) and the platform's own tables (CDC_METRICS_URL).
CREATE DATABASE shop;
CREATE DATABASE analytics;
CREATE DATABASE dagster;
CREATE DATABASE cdc_platform;
