"""Benchmarks of dynamo-ingest against boto3 loops: CPU per item, capacity use, scale.

``python -m benchmarks.run`` runs them; see ``benchmarks/README.md`` for the method.
"""
