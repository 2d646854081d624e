"""linkcall's composition root: settings, the FastAPI app, auth and the CLI."""
