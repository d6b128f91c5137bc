"""What the engine reads about people and policies: the notifier's paging configuration.

A Protocol, so the engine depends on the three lookups and not on where they come from
(the configuration file, the API's CONFIG stream, or a test's dictionaries). Each call
returns the current configuration: a step resolves its targets when it fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig


class EscalationDirectory(Protocol):
    def policies(self) -> Mapping[str, EscalationPolicyConfig]: ...

    def schedules(self) -> Mapping[str, ScheduleConfig]: ...

    def contacts(self) -> Mapping[str, ContactConfig]: ...
