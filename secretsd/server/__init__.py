"""The secretsd HTTP service (FastAPI). Entry point: :func:`secretsd.server.app.create_app`."""
