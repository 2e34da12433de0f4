"""The OpenAPI description matches the app's routes, and the docs page renders it without scripts."""

import re

from openapi_spec_validator import validate

from tests.support.api import http

METHODS = {"get", "post", "put", "patch", "delete"}


def api_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in {"api", "v1"} and rule.rule != "/":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes |= {(path, method.lower()) for method in rule.methods if method.lower() in METHODS}
    return routes


def described(spec) -> set[tuple[str, str]]:
    return {(path, method) for path, operations in spec["paths"].items() for method in operations if method in METHODS}


def test_every_api_route_is_described_and_nothing_else(app, server):
    reply = http("GET", f"{server}/api/openapi.json")
    assert reply.status == 200
    spec = reply.json
    assert spec["openapi"].startswith("3.1") and spec["servers"][0]["url"] == server
    assert api_routes(app) == described(spec)


def test_every_reference_resolves_and_operations_are_complete(client):
    spec = client.get("/api/openapi.json").get_json()
    text = str(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in spec["components"]["schemas"], name
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"] and operation["responses"], (method, path)
            assert "security" in operation, (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path


def test_the_spec_validates_against_openapi_31(client):
    validate(client.get("/api/openapi.json").get_json())


def test_docs_page_is_server_rendered_html_without_scripts(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script" not in page and "http://" not in page.split("<main", 1)[1].replace("http://localhost", "")
    for path in ("/api/signup/", "/api/token/refresh/", "/api/chat/completions/", "/v1/chat/completions"):
        assert path in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
