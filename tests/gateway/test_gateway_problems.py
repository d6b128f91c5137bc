"""One error body everywhere (RFC 9457 problem details), and the OpenAPI document says
which statuses each route answers with it."""

from __future__ import annotations

from typing import Any

import httpx

API = "/api/monitoring"
PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def test_a_bad_field_names_itself(client: httpx.AsyncClient) -> None:
    body = problem(await client.get(f"{API}/alerts?severity=loud"), 422)
    assert body["field"] == "severity"
    assert body["detail"].startswith("severity: Input should be")
    assert (body["title"], body["instance"]) == ("Unprocessable Entity", f"{API}/alerts")


async def test_a_body_that_names_an_actor_is_refused_by_field(client: httpx.AsyncClient) -> None:
    body = problem(
        await client.post(f"{API}/incidents", json={"title": "x", "by": "ceo@company.com"}), 422
    )
    assert body["field"] == "by"
    assert body["detail"] == "by: the actor is the authenticated identity; do not send it"


async def test_routing_errors_are_problems_too(client: httpx.AsyncClient) -> None:
    missing = problem(await client.get(f"{API}/nothing-here"), 404)
    assert missing["detail"] == f"no resource at {API}/nothing-here"
    wrong_method = problem(await client.delete(f"{API}/alerts"), 405)
    assert wrong_method["detail"] == f"DELETE is not allowed on {API}/alerts"
    not_json = problem(
        await client.post(
            f"{API}/incidents", content=b"{", headers={"Content-Type": "application/json"}
        ),
        422,
    )
    assert not_json["detail"].startswith("body")


async def test_a_domain_error_is_a_problem_with_its_field(client: httpx.AsyncClient) -> None:
    body = problem(await client.get(f"{API}/alerts/nope"), 404)
    assert (body["field"], body["detail"]) == ("alert_id", "alert_id: no alert 'nope'")


async def test_every_route_documents_its_error_statuses(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    checked = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            public = operation.get("security") == []
            wanted = set() if public else {"401", "403", "429"}
            if operation.get("parameters") or operation.get("requestBody"):
                wanted.add("422")
            for status in wanted:
                assert status in responses, (method, path, status)
            for status, response in responses.items():
                content = response.get("content", {})
                if status[0] in "45" and PROBLEM in content:
                    assert content[PROBLEM]["schema"] == PROBLEM_REF, (method, path, status)
                    # problem details only as problem+json; a protocol's own JSON error
                    # body (OTLP's google.rpc.Status) may stand beside them
                    json_body = content.get("application/json", {}).get("schema")
                    assert json_body != PROBLEM_REF, (method, path, status)
                if status in wanted:
                    assert PROBLEM in content, (method, path, status)
            checked += 1
    assert checked > 20
