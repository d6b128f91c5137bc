"""Configuration as events: rules and maintenance windows (owned by alerts); channels,
contacts, schedules and escalation policies (owned by the notifier).

An item changed through the API is an aggregate on its own subject
(``config.rules.<token>``, ``config.channels.<token>``, the token a short hash of the
name). The configuration file's items are provisioned by each owner at start as one
event on ``config.provisioned.<service>`` (a further kind of the same owner:
``config.provisioned.<service>.<kind>``), only when they differ from the last one:
such items are file-managed and read-only through the API. A channel's secret is only
ever in these events encrypted (``enc:v1:…``).
"""

from __future__ import annotations

from pydantic import Field

from shared.config import ChannelConfig, RuleConfig
from shared.events.base import Event
from shared.maintenanceconfig import MaintenanceWindowConfig
from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig


class RuleCreated(Event):
    """A rule was created through the API; the evaluator applies it to the next sample."""

    rule: RuleConfig
    by: str = Field(description="The authenticated identity that made the change")


class RuleUpdated(Event):
    """A rule created through the API was changed."""

    rule: RuleConfig
    by: str


class RuleDeleted(Event):
    """A rule created through the API was deleted (or the configuration file took its name)."""

    name: str
    by: str


class RulesProvisioned(Event):
    """The rules of the configuration file, as the alerts service loaded them at start."""

    file: str = Field(default="", description="The file's path; empty for the built-in rules")
    rules: list[RuleConfig]


class ChannelCreated(Event):
    """A channel was created through the API; its secret is encrypted (``enc:v1:…``)."""

    channel: ChannelConfig
    by: str


class ChannelUpdated(Event):
    """A channel created through the API was changed, or its secret encrypted again."""

    channel: ChannelConfig
    by: str


class ChannelDeleted(Event):
    """A channel created through the API was deleted (or the configuration file took its name)."""

    name: str
    by: str


class ChannelsProvisioned(Event):
    """The channels of the configuration file, secrets encrypted, as the notifier loaded them."""

    file: str = Field(default="", description="The file's path; empty when there is none")
    channels: list[ChannelConfig]


class ContactCreated(Event):
    """A person's contact methods were set through the API."""

    contact: ContactConfig
    by: str


class ContactUpdated(Event):
    """A contact created through the API was changed."""

    contact: ContactConfig
    by: str


class ContactDeleted(Event):
    """A contact created through the API was deleted (or the configuration file took its name)."""

    name: str
    by: str


class ContactsProvisioned(Event):
    """The contacts of the configuration file, as the notifier loaded them."""

    file: str = Field(default="", description="The file's path; empty when there is none")
    contacts: list[ContactConfig]


class ScheduleCreated(Event):
    """An on-call schedule was created through the API."""

    schedule: ScheduleConfig
    by: str


class ScheduleUpdated(Event):
    """A schedule created through the API was changed (its layers or overrides)."""

    schedule: ScheduleConfig
    by: str


class ScheduleDeleted(Event):
    """A schedule created through the API was deleted (or the configuration file took its name)."""

    name: str
    by: str


class SchedulesProvisioned(Event):
    """The schedules of the configuration file, as the notifier loaded them."""

    file: str = Field(default="", description="The file's path; empty when there is none")
    schedules: list[ScheduleConfig]


class EscalationPolicyCreated(Event):
    """An escalation policy was created through the API."""

    policy: EscalationPolicyConfig
    by: str


class EscalationPolicyUpdated(Event):
    """An escalation policy created through the API was changed; escalations under way
    keep the steps they started with."""

    policy: EscalationPolicyConfig
    by: str


class EscalationPolicyDeleted(Event):
    """An escalation policy created through the API was deleted (or the configuration file
    took its name)."""

    name: str
    by: str


class EscalationPoliciesProvisioned(Event):
    """The escalation policies of the configuration file, as the notifier loaded them."""

    file: str = Field(default="", description="The file's path; empty when there is none")
    policies: list[EscalationPolicyConfig]


class MaintenanceWindowCreated(Event):
    """A maintenance window was made through the API; the alerts service applies it at once."""

    window: MaintenanceWindowConfig
    by: str


class MaintenanceWindowUpdated(Event):
    """A maintenance window made through the API was changed."""

    window: MaintenanceWindowConfig
    by: str


class MaintenanceWindowDeleted(Event):
    """A maintenance window made through the API was deleted (or the configuration file took
    its name)."""

    name: str
    by: str


class MaintenanceWindowsProvisioned(Event):
    """The maintenance windows of the configuration file, as the alerts service loaded them."""

    file: str = Field(default="", description="The file's path; empty when there is none")
    windows: list[MaintenanceWindowConfig]


RULE_EVENTS = (RuleCreated, RuleUpdated, RuleDeleted)
CHANNEL_EVENTS = (ChannelCreated, ChannelUpdated, ChannelDeleted)
CONTACT_EVENTS = (ContactCreated, ContactUpdated, ContactDeleted)
SCHEDULE_EVENTS = (ScheduleCreated, ScheduleUpdated, ScheduleDeleted)
POLICY_EVENTS = (EscalationPolicyCreated, EscalationPolicyUpdated, EscalationPolicyDeleted)
MAINTENANCE_EVENTS = (MaintenanceWindowCreated, MaintenanceWindowUpdated, MaintenanceWindowDeleted)
