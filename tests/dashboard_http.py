"""Call a Dash app's callbacks over HTTP, exactly as the browser does (`_dash-update-component`).

Used by the dashboard tests (Flask test client) and `benchmarks/bench_dashboard.py` (a real
server), so both drive the real app, not the Python functions behind it.
"""

from __future__ import annotations

from typing import Any

import dash


def callback_payload(
    app: dash.Dash, output_id: str, values: dict[str, Any], changed: list[str] | None = None
) -> dict:
    """The request body for the callback that outputs to component ``output_id``.

    Args:
        app: the app (its callback map names the inputs and states).
        output_id: id of any component the callback writes.
        values: ``{"id.property" or "id": value}`` for each input and state (missing ones are None).
        changed: the inputs that triggered the call ("id.property"); default: all of them.

    Raises:
        KeyError: if no callback writes ``output_id``.
    """
    for key, cb in app.callback_map.items():
        outs = [o for o in key.strip(".").split("...")]
        if any(o.rsplit(".", 1)[0] == output_id for o in outs):

            def spec(d: dict) -> dict:
                value = values.get(f"{d['id']}.{d['property']}", values.get(d["id"]))
                return {"id": d["id"], "property": d["property"], "value": value}

            return {
                "output": key,
                "outputs": [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]} for o in outs]
                if key.startswith("..")
                else {"id": outs[0].rsplit(".", 1)[0], "property": outs[0].rsplit(".", 1)[1]},
                "inputs": [spec(i) for i in cb["inputs"]],
                "state": [spec(s) for s in cb["state"]],
                "changedPropIds": changed or [f"{i['id']}.{i['property']}" for i in cb["inputs"]],
            }
    raise KeyError(f"no callback writes {output_id!r}")


def post(
    client: Any, app: dash.Dash, output_id: str, values: dict[str, Any], changed: list[str] | None = None
) -> Any:
    """POST the callback that outputs to ``output_id`` with a Flask test client; returns the response."""
    return client.post("/_dash-update-component", json=callback_payload(app, output_id, values, changed))


def outputs_of(response_json: dict) -> dict[str, dict[str, Any]]:
    """``{component id: {property: value}}`` from a `_dash-update-component` response."""
    return response_json["response"]
