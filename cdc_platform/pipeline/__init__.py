"""A pipeline from plan to running connectors: full load, handoff, connector deployment, teardown."""
