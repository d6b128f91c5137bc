"""What the engine reads about people and policies: the notifier's paging configuration.

A Protocol, so the engine depends on the three lookups and not on where they come from
(the configuration file, the API's CONFIG stream, or a test's dictionaries). Each call
returns the current configuration: a step resolves its targets when it fires.
"""

from __future__ import annotations

from typing import Protocol

from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig


class PagingDirectory(Protocol):
    def policies(self) -> dict[str, EscalationPolicyConfig]: ...

    def schedules(self) -> dict[str, ScheduleConfig]: ...

    def contacts(self) -> dict[str, ContactConfig]: ...
