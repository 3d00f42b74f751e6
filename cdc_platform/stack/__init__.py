"""The no-Docker local stack: PostgreSQL, MariaDB, Kafka (KRaft), Kafka Connect with Debezium, S3 (moto, or SeaweedFS)."""
