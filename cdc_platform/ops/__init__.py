"""The operating half: reading what Kafka Connect reports and explaining it to the user."""
