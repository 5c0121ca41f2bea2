"""The Dash web app (`lrdoctor serve LOGDIR`): overview, run and compare pages, export.

Layers: `data.RunStore` (the only caller of the analyzers) -> `views/*` (a page each:
``layout()`` + ``register_callbacks(app, store)``) -> `figures` (pure plotly builders, also used
by `export`). `app.create_app` builds the app; `app.serve` runs it.
"""

from lrdoctor.dashboard.app import create_app, serve

__all__ = ["create_app", "serve"]
