"""Glue crawler and CSV classifier definitions, and a local crawler that infers a CSV layout
the way Glue's classifier does and registers the catalog table."""
