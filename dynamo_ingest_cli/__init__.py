"""The ``dynamo-ingest`` command line: run, init, crawl, demo, status, retry, estimate."""
