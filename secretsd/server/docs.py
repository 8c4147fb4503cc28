"""``/docs``: Swagger UI served from the installed package, never from a CDN.

Secrets services often run without internet, and a page that loads scripts
from a third party hands that party the docs page's origin. The assets come
from ``swagger-ui-bundle-v2`` (``swagger_ui_bundle.swagger_ui_path``); the page
and its start-up script are ours, so the Content-Security-Policy of
``/docs`` can forbid inline and foreign scripts (see edge.py).

``/docs`` and ``/openapi.json`` need no token: they describe the API, which is
public in the source, and hold no data. A browser cannot attach a bearer
token to a page load, so requiring one would only make the docs unusable.
Operators who do not want them exposed set ``SECRETSD_DOCS_ENABLED=false``,
which removes both.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from secretsd.server.edge import DOCS_ASSETS_PREFIX

__all__ = ["install_docs"]

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>secretsd API</title>
<link rel="stylesheet" href="{assets}swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  validatorUrl: null,
});
"""


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``: page, start-up script, bundled assets (the app has docs_url=None)."""
    from swagger_ui_bundle import swagger_ui_path

    page = _PAGE.format(assets=DOCS_ASSETS_PREFIX)

    async def docs(_request: Request) -> Response:
        return HTMLResponse(page)

    async def init(_request: Request) -> Response:
        return Response(_INIT, media_type="text/javascript")

    app.add_route("/docs", docs, include_in_schema=False)
    app.add_route("/docs/init.js", init, include_in_schema=False)
    app.mount(
        DOCS_ASSETS_PREFIX.rstrip("/"),
        StaticFiles(directory=Path(str(swagger_ui_path))),
        name="docs-assets",
    )
