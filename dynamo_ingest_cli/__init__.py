"""dynamo_ingest_cli."""
