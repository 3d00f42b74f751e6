"""The source schema as the platform sees it: canonical types, discovery, target DDL and the value
rules per engine pair. Pure except discovery, which reads a source."""
