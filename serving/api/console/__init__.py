"""The web console at /ui (pages, templates, vendored static files) and the offline /docs and /redoc."""
