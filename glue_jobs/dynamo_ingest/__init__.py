"""dynamo-ingest: the Glue job's library (shipped with ``--extra-py-files``).

Everything here runs under plain pyspark or plain Python; only ``runtime.py``'s Glue branch
touches ``awsglue``.
"""

from __future__ import annotations

__version__ = "0.1.0"
