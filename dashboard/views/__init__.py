"""Pages of the dashboard: each module has ``layout()`` and ``register_callbacks(app, store)``."""
