"""The HTTP API: app, routes, schemas, dependencies, security, settings, metrics and the customer store."""
