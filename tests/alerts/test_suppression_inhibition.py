"""Inhibition: while an alert matching the source fires, matching targets with equal
labels page nobody, and are told when that ends."""

from __future__ import annotations

import pytest

from shared.bus import EventBus
from shared.config import ConfigError, RuleConfig, VigilConfig, parse_config
from shared.settings import Settings
from shared.suppressionconfig import InhibitRuleConfig
from tests.alerts.suppression_rig import Rig, kinds
from tests.conftest import RuntimeFactory

HOST_DOWN = RuleConfig(
    name="HostDown", metric="host_up", direction="below", critical=0, hysteresis=0.5
)
HIGH_CPU = RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)
HOST_INHIBITS = InhibitRuleConfig(
    source_matchers=['alertname="HostDown"'],
    target_matchers=['alertname!="HostDown"'],
    equal=["host"],
)


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    return Rig(bus, settings, start_service)


async def test_a_host_down_inhibits_that_hosts_alerts_only(rig: Rig) -> None:
    await rig.start(VigilConfig(rules=[HOST_DOWN, HIGH_CPU], inhibit_rules=[HOST_INHIBITS]))
    # given web-1 is down
    await rig.samples(0, name="host_up", host="web-1")
    (down,) = await rig.until(1)
    assert (down.rule, down.suppressed_by) == ("HostDown", [])
    # when web-1's and web-2's CPU alerts fire
    await rig.samples(95, host="web-1")
    await rig.samples(95, host="web-2")
    _, inhibited, other = await rig.until(3)
    # then web-1's names the alert that inhibits it; web-2's pages
    (ref,) = inhibited.suppressed_by
    assert (ref.kind, ref.id, ref.detail) == ("inhibition", down.aggregate_id, "HostDown")
    assert (other.labels, other.suppressed_by) == ({"host": "web-2"}, [])
    # when web-1 comes back, its CPU alert pages now
    await rig.samples(1, name="host_up", host="web-1")
    events = await rig.until(5)
    assert kinds(events[3:]) == [("AlertResolved", []), ("AlertSuppressionChanged", [])]
    assert events[4].aggregate_id == inhibited.aggregate_id


async def test_an_inhibiting_alert_firing_later_mutes_what_already_fires(rig: Rig) -> None:
    await rig.start(VigilConfig(rules=[HOST_DOWN, HIGH_CPU], inhibit_rules=[HOST_INHIBITS]))
    await rig.samples(95, host="web-1")
    (cpu,) = await rig.until(1)
    assert cpu.suppressed_by == []
    await rig.samples(0, name="host_up", host="web-1")
    events = await rig.until(3)
    assert kinds(events) == [
        ("AlertFired", []),
        ("AlertFired", []),
        ("AlertSuppressionChanged", ["inhibition"]),
    ]
    assert events[2].aggregate_id == cpu.aggregate_id
    assert events[2].suppressed_by[0].id == events[1].aggregate_id


async def test_critical_inhibits_warning_of_the_same_series_never_itself(rig: Rig) -> None:
    disk_critical = RuleConfig(name="DiskFull", metric="disk", critical=95)
    disk_warning = RuleConfig(name="DiskFilling", metric="disk", warning=80)
    config = VigilConfig(
        rules=[disk_critical, disk_warning],
        inhibit_rules=[
            InhibitRuleConfig(
                source_matchers=['severity="critical"'],
                target_matchers=['severity=~"warning|critical"'],
                equal=["host", "mount"],
            )
        ],
    )
    await rig.start(config)
    await rig.samples(97, name="disk", host="db-1", mount="/var")
    await rig.samples(85, name="disk", host="db-1", mount="/home")
    critical, warning, other = await rig.until(3)
    assert (critical.rule, critical.suppressed_by) == ("DiskFull", [])  # not by itself
    assert warning.rule == "DiskFilling"
    assert [r.id for r in warning.suppressed_by] == [critical.aggregate_id]
    assert (other.labels["mount"], other.suppressed_by) == ("/home", [])
    # the critical one recovers below 95 but the warning still holds: it pages now
    await rig.samples(88, name="disk", host="db-1", mount="/var")
    events = await rig.until(5)
    assert kinds(events[3:]) == [("AlertResolved", []), ("AlertSuppressionChanged", [])]


def test_inhibit_rules_are_validated_naming_the_field() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config(
            "inhibit_rules:\n"
            "  - source_matchers: ['alertname=\"HostDown\"']\n"
            "    target_matchers: ['severity warning']\n"
            "    equal: [host]\n"
        )
    assert "inhibit_rules[0].target_matchers: target_matchers[0]:" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        parse_config("inhibit_rules:\n  - source_matchers: ['a=\"b\"']\n    equal: [host]\n")
    assert "inhibit_rules[0].target_matchers: Field required" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        parse_config(
            "inhibit_rules:\n"
            "  - source_matchers: ['a=\"b\"']\n"
            "    target_matchers: ['a=\"c\"']\n"
            "    equal: ['not a label']\n"
        )
    assert "inhibit_rules[0].equal: equal[0]:" in str(bad.value)
