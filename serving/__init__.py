"""Serving: api/ is the HTTP API (FastAPI), batch/ the offline engines (file, stream, Spark, simulation)."""
