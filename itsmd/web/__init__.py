"""The HTTP edge: aiohttp app with ingest, API, operations endpoints, auth and one error middleware."""
