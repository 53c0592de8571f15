"""FastAPI app: settings, schemas, routes, customer store, model loading."""
