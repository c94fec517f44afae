"""/v1/openapi.json against the real route table of `dtf-core serve`: every
route is documented with each method its handler answers, and every
documented path and method has a route that answers it."""

from __future__ import annotations

import re
from types import SimpleNamespace

import tornado.web

from dtf_core.service.api import make_app
from dtf_core.service.routes import routes as serve_routes
from dtf_core.service.views import openapi

METHODS = ("get", "post", "put", "patch", "delete")


def _real_routes() -> list[tuple[re.Pattern[str], type]]:
    # The route table only: no request is served, so the manager is never used
    # beyond the change hooks the console feed registers on it.
    manager = SimpleNamespace(on_change=[])
    extra = serve_routes(manager, b"x" * 32, presence=None, metrics=object())  # type: ignore[arg-type]
    app = make_app(manager, b"x" * 32, routes=extra)  # type: ignore[arg-type]
    return [(rule.matcher.regex, rule.target) for rule in app.wildcard_router.rules]


def _methods(handler: type) -> set[str]:
    return {m for m in METHODS if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "20260101-000000-abcd", path)


def test_every_route_is_documented_and_every_documented_path_is_a_route() -> None:
    routes = _real_routes()
    documented = {_concrete(p): p for p in openapi.PATHS}
    for regex, handler in routes:
        paths = [p for c, p in documented.items() if regex.fullmatch(c)]
        assert paths, f"route {regex.pattern} ({handler.__name__}) is not in the OpenAPI document"
        for path in paths:
            assert set(openapi.PATHS[path]) == _methods(handler), (path, handler.__name__)
    for concrete, path in documented.items():
        assert any(regex.fullmatch(concrete) for regex, _ in routes), f"{path} has no route"


def test_the_document_is_openapi_3_with_resolvable_references() -> None:
    doc = openapi.DOCUMENT
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    refs = re.findall(r"#/components/schemas/(\w+)", repr(doc))
    assert refs and all(name in schemas for name in refs)
    snap = schemas["ClusterSnapshot"]["properties"]
    assert snap["workers"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/WorkerInfo"},
    }
    assert schemas["WorkerInfo"]["properties"]["cpu"]["items"] == {"type": "number"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and {"200", "201", "202"} & set(op["responses"]), (path, method)
