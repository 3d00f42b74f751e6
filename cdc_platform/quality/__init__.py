"""Data quality: row counts, chunked checksums, schema drift and Great Expectations suites, and the
checks that put them on every replicated table. Reads sources and targets; changes nothing."""
