"""What every route declares: the role it needs and the statuses it can answer.

``Viewer``, ``Responder``, ``Admin`` and ``Ingest`` are route parameters giving the
authenticated identity (401 without one, 403 when its role is too low); the identity's
``actor`` is who a command says did it. ``PUBLIC`` marks the few routes anyone may call
in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from services.gateway.access import Identity, require

Viewer = Annotated[Identity, require("viewer")]
Responder = Annotated[Identity, require("responder")]
Admin = Annotated[Identity, require("admin")]
Ingest = Annotated[Identity, require("ingest")]

PUBLIC: dict[str, Any] = {"security": []}
