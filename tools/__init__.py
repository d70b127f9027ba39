"""Build helpers of the repository (not deployed): ``python -m tools.<name>``."""
