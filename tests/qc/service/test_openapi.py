"""The OpenAPI document is complete: every operation declares its path parameters, its body and
its error answers, all from the pydantic models (issue 14: it used to have none of these)."""

from __future__ import annotations

import re

from qc.service import openapi, schemas

BODIES = {  # operations that take a JSON body -> the model it must be
    ("/products", "post"): "ProductIn",
    ("/products/{name}", "patch"): "ProductPatch",
    ("/stations", "post"): "StationIn",
    ("/stations/{name}", "patch"): "StationPatch",
    ("/users", "post"): "UserIn",
    ("/users/{username}", "patch"): "UserPatch",
    ("/results", "post"): "ResultsIn",
    ("/inspections/{inspection_id}/review", "post"): "ReviewIn",
}


def _operations(spec):
    for path, entry in spec["paths"].items():
        for method, op in entry.items():
            if method != "parameters":
                yield path, method, op, entry.get("parameters", [])


def test_every_operation_declares_parameters_bodies_and_errors(client):
    spec = client.get("/api/v1/openapi.json").json
    components = spec["components"]["schemas"]
    seen = 0
    for path, method, op, path_params in _operations(spec):
        seen += 1
        names = set(re.findall(r"{([^}]+)}", path))
        assert {p["name"] for p in path_params} == names, path
        responses = op["responses"]
        if names:
            assert {"400", "404"} <= set(responses), (path, method)
        if (path, method) in BODIES:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/" + BODIES[path, method]) and BODIES[path, method] in components
        if "requestBody" in op:
            assert {"400", "413"} <= set(responses), (path, method)
        for status, response in responses.items():
            if status >= "400":
                schema = response["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorReply"), (path, method, status)
        if op.get("security") != []:
            assert {"401", "403"} <= set(responses), (path, method)
    assert seen >= 28
    model_id = next(p for p in spec["paths"]["/models/{model_id}/activate"]["parameters"])
    assert model_id["schema"]["type"] == "integer"


def test_strict_bodies_show_in_the_document(client):
    spec = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    assert spec["UserPatch"]["properties"]["active"]["anyOf"][0]["type"] == "boolean"
    assert spec["UserPatch"]["additionalProperties"] is False
    assert spec["ResultIn"]["properties"]["score"]["maximum"] == 1


def test_a_declared_view_documents_itself(app):
    """How another endpoint joins: declare() on the view is all it takes."""
    view = app.view_functions["api.create_user"]
    assert view.api_doc["body"] is schemas.UserIn
    spec = openapi.build_spec(app)
    assert spec["paths"]["/users"]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"]["$ref"].endswith("/UserCreated")
