"""How health is judged: which facts make Vigil degraded or failing, and why."""

from __future__ import annotations

from services.gateway.health.liveness import ServiceStatus
from services.gateway.health.verdict import (
    ConsumerFacts,
    HealthLimits,
    SelfFigures,
    StallClock,
    StreamFacts,
    WatchdogTrips,
    consumer_problems,
    overall,
    service_problems,
    stream_problems,
    watchdog_problems,
)

LIMITS = HealthLimits(disk_low_percent=10, disk_full_percent=2, stall_after_s=30)
MB = 1024 * 1024


def up(service: str, **report: object) -> ServiceStatus:
    return ServiceStatus(service, True, 100.0, "h", 1, 5.0, report=dict(report))


def disk(free_mb: float, total_mb: float = 1000, writable: bool = True) -> dict[str, object]:
    return {
        "path": "/data",
        "free_bytes": int(free_mb * MB),
        "total_bytes": int(total_mb * MB),
        "writable": writable,
    }


def test_a_healthy_system_is_ok() -> None:
    problems = service_problems([up("alerts", disk=disk(500))], LIMITS, 101.0, starting=False)
    assert problems == [] and overall(problems) == "ok"


def test_a_down_service_on_the_paging_path_is_failing_elsewhere_degraded() -> None:
    down = [
        ServiceStatus("alerts", False, 90.0, "h", 1, None),
        ServiceStatus("metrics", False, 90.0, "h", 1, None),
    ]
    problems = service_problems(down, LIMITS, 100.0, starting=False)
    assert [(p.component, p.status) for p in problems] == [
        ("service:alerts", "failing"),
        ("service:metrics", "degraded"),
    ]
    assert problems[0].reason == "alerts is down: no heartbeat for 10 s"
    assert overall(problems) == "failing"


def test_a_service_never_heard_from_counts_only_after_start_up() -> None:
    never = [ServiceStatus("notifier", False, None, None, None, None)]
    assert service_problems(never, LIMITS, 1.0, starting=True) == []
    [problem] = service_problems(never, LIMITS, 1.0, starting=False)
    assert problem.reason == "notifier is down: never heard from"


def test_disk_nearly_full_degrades_full_or_read_only_fails() -> None:
    def judged(d: dict[str, object]) -> list[tuple[str, str]]:
        found = service_problems([up("metrics", disk=d)], LIMITS, 101.0, starting=False)
        return [(p.status, p.reason) for p in found]

    assert judged(disk(50)) == [
        ("degraded", "the disk under /data is nearly full: 50 MB (5.0 %) free")
    ]
    assert judged(disk(10)) == [("failing", "the disk under /data is full: 10.0 MB (1.0 %) free")]
    assert judged(disk(500, writable=False)) == [("failing", "the data dir /data is read-only")]


def test_faults_name_their_component_and_channels_only_degrade() -> None:
    faults = {"notifier-alerts": "storage: No space left on device", "channel:ops": "HTTP 500"}
    problems = service_problems([up("notifier", faults=faults)], LIMITS, 101.0, starting=False)
    assert [(p.component, p.status, p.reason) for p in problems] == [
        ("channel:ops", "degraded", "channel ops failing: HTTP 500"),
        (
            "notifier:notifier-alerts",
            "failing",
            "notifier-alerts: storage: No space left on device",
        ),
    ]


def test_repeated_restarts_are_reported() -> None:
    flapping = ServiceStatus("incidents", True, 100.0, "h", 1, 1.0, restarts=4)
    [problem] = service_problems([flapping], LIMITS, 101.0, starting=False)
    assert problem.reason == "incidents restarted 4 times in the last 15 minutes"


def test_a_stalled_evaluator_fails_a_stalled_store_degrades() -> None:
    consumers = [
        ConsumerFacts("METRICS", "alerts-evaluator", 40, 1, 10, stalled_s=31),
        ConsumerFacts("METRICS", "metrics-store", 40, 1, 10, stalled_s=45),
        ConsumerFacts("ALERTS", "notifier-alerts", 0, 1, 10, stalled_s=29),
    ]
    problems = consumer_problems(consumers, LIMITS)
    assert [(p.component, p.status) for p in problems] == [
        ("consumer:alerts-evaluator", "failing"),
        ("consumer:metrics-store", "degraded"),
    ]
    assert problems[0].reason == (
        "evaluation stalled: alerts-evaluator has 40 messages waiting and made no progress for 31 s"
    )


def test_stall_clock_counts_only_while_work_waits_and_nothing_moves() -> None:
    clock = StallClock()
    assert clock.observe("c", (5, 5), waiting=True, now=0.0) == 0.0
    assert clock.observe("c", (5, 5), waiting=True, now=10.0) == 10.0
    assert clock.observe("c", (6, 6), waiting=True, now=12.0) == 0.0  # progress
    assert clock.observe("c", (6, 6), waiting=False, now=40.0) == 0.0  # nothing to do
    assert clock.observe("c", (6, 6), waiting=True, now=41.0) == 1.0


def test_a_stream_near_the_limit_where_it_refuses_writes_degrades() -> None:
    streams = [StreamFacts("ALERTS", 95, 100), StreamFacts("INCIDENTS", 5, -1)]
    [problem] = stream_problems(streams, LIMITS)
    assert (problem.component, problem.status) == ("stream:ALERTS", "degraded")


def test_a_stream_that_drops_its_oldest_at_its_limit_is_fine_there() -> None:
    at_limit = StreamFacts("METRICS", 100, 100, refuses_when_full=False)
    assert stream_problems([at_limit], LIMITS) == []


def test_the_watchdog_names_the_stage_that_stopped_passing_it_on() -> None:
    trips = WatchdogTrips()
    for sent in (100.0, 105.0, 110.0):
        trips.record(sent)
    statuses = [
        up("alerts", watchdog_evaluated=110.0),
        up("notifier", watchdog_delivered=100.0),
    ]
    problems = watchdog_problems(trips, statuses, now=150.0, after_s=35.0)
    assert [(p.component, p.status) for p in problems] == [("watchdog:delivery", "failing")]
    assert "the watchdog sample sent 45 s ago has not passed notifier" in problems[0].reason
    assert watchdog_problems(trips, statuses, now=139.0, after_s=35.0) == []


def test_own_figures_report_a_recovered_channel_as_zero() -> None:
    figures = SelfFigures()
    failing = [up("notifier", faults={"channel:ops": "HTTP 500"}, disk=disk(400))]
    first = figures.samples(1.0, failing, [], [], starting=False)
    by_name = {(s["name"], tuple(s["labels"].items())): s["value"] for s in first}
    assert by_name[("vigil_watchdog", ())] == 1.0
    assert by_name[("vigil_channel_failing", (("channel", "ops"),))] == 1.0
    assert by_name[("vigil_data_dir_free_percent", (("service", "notifier"),))] == 40.0
    assert by_name[("vigil_service_down", (("service", "notifier"),))] == 0.0
    later = figures.samples(2.0, [up("notifier")], [], [], starting=False)
    assert {
        "name": "vigil_channel_failing",
        "value": 0.0,
        "timestamp": None,
        "labels": {"channel": "ops"},
    } in later


def test_own_figures_report_the_filling_of_streams_that_refuse_writes_only() -> None:
    streams = [
        StreamFacts("ALERTS", 30, 100),
        StreamFacts("METRICS", 100, 100, refuses_when_full=False),
    ]
    samples = SelfFigures().samples(1.0, [], [], streams, starting=False)
    filling = [s for s in samples if s["name"] == "vigil_stream_used_percent"]
    assert filling == [
        {
            "name": "vigil_stream_used_percent",
            "value": 30.0,
            "timestamp": None,
            "labels": {"stream": "ALERTS"},
        }
    ]
