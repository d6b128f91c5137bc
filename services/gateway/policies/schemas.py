"""Bodies of the escalation-policies section: a policy is written exactly as in the YAML file."""

from __future__ import annotations

from pydantic import BaseModel

from services.gateway.common.config_items import public_model
from shared.pagingconfig import EscalationPolicyConfig

EscalationPolicyPublic: type[BaseModel] = public_model(EscalationPolicyConfig)
