"""The durable consumer registry names every durable a service declares, on its stream."""

from __future__ import annotations

from services.alerts.handlers import EVALUATOR
from services.gateway.health.verdict import ConsumerFacts, HealthLimits, consumer_problems
from services.gateway.sections import PROJECTIONS
from services.incidents.handlers import FROM_ALERTS
from services.metrics.handlers import STORE_CONSUMER
from services.metrics.remote.forward import FORWARD_CONSUMER
from services.notifier.deadman import WATCHDOG_CONSUMER
from services.notifier.handlers import consumer_specs
from shared.durables import BY_NAME, DURABLES, owner_of, role_of


def declared() -> dict[str, tuple[str, str, str, bool]]:
    """Every durable the code declares: name -> (stream, service, filter, ordered)."""
    specs = [
        (EVALUATOR, "alerts"),
        (FROM_ALERTS, "incidents"),
        (STORE_CONSUMER, "metrics"),
        (FORWARD_CONSUMER, "metrics"),
        (WATCHDOG_CONSUMER, "notifier"),
        *((spec, "notifier") for spec in consumer_specs([])),
    ]
    found = {
        spec.durable: (spec.stream.name, service, spec.filter_subject, spec.ordered)
        for spec, service in specs
    }
    found.update({p.name: (p.stream.name, "gateway", p.filter_subject, True) for p in PROJECTIONS})
    return found


def test_every_declared_durable_is_registered_with_its_stream_and_owner() -> None:
    for name, facts in declared().items():
        registered = BY_NAME.get(name)
        assert registered is not None, f"{name} is not in shared/durables.py"
        assert (
            registered.stream,
            registered.service,
            registered.filter_subject,
            registered.ordered,
        ) == facts, name


def test_names_are_unique() -> None:
    assert len(BY_NAME) == len(DURABLES)


def test_owner_and_role_come_from_the_registry_not_the_name() -> None:
    assert owner_of("alerts-evaluator") == "alerts"
    assert owner_of("gateway-alerts") == "gateway"
    # a name that merely looks like another service's is not taken for it
    assert owner_of("notifier-made-up") is None
    assert role_of("notifier-made-up") == "read models"
    assert role_of("notifier-watchdog") == "delivery"


def test_a_stalled_evaluator_is_named_by_its_registered_role() -> None:
    limits = HealthLimits(stall_after_s=10)
    facts = [ConsumerFacts("METRICS", "alerts-evaluator", 5, 0, 1, 60.0)]
    [problem] = consumer_problems(facts, limits)
    assert problem.status == "failing"
    assert "evaluation stalled" in problem.reason
