"""The OpenAPI document holds against the running system: every operation, fuzzed with
valid and invalid data under a valid admin key, never answers 5xx, answers only what the
document describes, refuses data the document rules out, and refuses the request
again without credentials.

The whole system runs (``vigil up``), so commands reach their owning services; the
schema is the one the live gateway serves at ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.conftest import TEST_ADMIN_KEY
from tests.system.conftest import VigilProcess

# the identity section authenticates the bootstrap admin key; without it nothing is served
pytest.importorskip("services.gateway.identity")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection, ignored_auth]
SEED = 20240611
REQUEST_TIMEOUT_S = 15


@pytest.fixture
def api_schema(vigil_up: VigilProcess, request: pytest.FixtureRequest) -> OpenApiSchema:
    # schemathesis 4.32 names each operation's report through ``Node._nodeid``, an
    # attribute pytest 9.2 no longer has; give it the node's id to start from
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "auth": {"openapi": {"apiKey": {"bearer": TEST_ADMIN_KEY}}},
            "request-timeout": REQUEST_TIMEOUT_S,
            "generation": {"deterministic": True},
            # a stateful run would chain operations at random; each is checked on its own
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{vigil_up.url}/openapi.json", config=config)


# the live stream never ends, so a request for it cannot be validated as a whole response;
# tests/gateway/test_gateway_live.py covers its authentication and what it carries
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/monitoring/events")


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_every_operation_keeps_to_the_openapi_document(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
