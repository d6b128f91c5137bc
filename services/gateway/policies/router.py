"""Escalation policies: list and read for viewers; create, change and delete for admins,
through the notifier."""

from __future__ import annotations

from services.gateway.common.config_items import config_router
from services.gateway.policies.projector import PROJECTION_NAME
from services.gateway.policies.schemas import EscalationPolicyPublic
from services.gateway.policies.tables import policies
from shared import commands
from shared.pagingconfig import EscalationPolicyConfig

router = config_router(
    path="escalation-policies",
    noun="policy",
    model=EscalationPolicyConfig,
    public=EscalationPolicyPublic,
    table=policies,
    projection=PROJECTION_NAME,
    create=(
        commands.CREATE_POLICY,
        lambda item, by: commands.CreatePolicy(policy=item, by=by),
    ),
    update=(
        commands.UPDATE_POLICY,
        lambda name, item, by: commands.UpdatePolicy(name=name, policy=item, by=by),
    ),
    remove=(commands.DELETE_POLICY, lambda name, by: commands.DeletePolicy(name=name, by=by)),
    said={
        "list": "Every escalation policy in use, by name: the configuration file's and "
        "those made here.",
        "create": "Escalations started from now on follow it; 409 when the name is taken "
        "(by the file or the API).",
        "update": "Replaces the policy (its name stays); 409 for a file-managed policy.",
        "delete": "409 for a file-managed policy.",
    },
)
