"""The in-house exposition writer speaks the Prometheus text format: escapes, kinds,
cumulative histograms; checked by a strict reader."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.selfmetrics import Registry, exposition, process_families
from tests.prom_text import parse, value


def test_a_registry_renders_every_kind_in_the_text_format() -> None:
    registry = Registry()
    process_families(registry)
    handled = registry.counter("x_handled_total", "Handled.\nSecond line", labels=("channel",))
    handled.inc(channel='email "ops"\\team\n')
    handled.inc(2, channel="slack")
    registry.gauge("x_open", "Open.").set(3)
    latency = registry.histogram("x_seconds", "Latency.", labels=("route",), buckets=(0.1, 1.0))
    for seconds in (0.05, 0.5, 0.5, 7.0):
        latency.observe(seconds, route="/a/{id}")

    text = exposition("alerts", registry)
    families = parse(text)
    official = {f.name: f for f in text_string_to_metric_families(text)}
    assert official["x_handled"].type == "counter"  # the library drops _total
    assert official["x_seconds"].type == "histogram"
    assert {s.labels["channel"] for s in official["x_handled"].samples} == {
        'email "ops"\\team\n',
        "slack",
    }

    assert families["x_handled_total"]["type"] == "counter"
    assert value(families, "x_handled_total", channel='email \\"ops\\"\\\\team\\n') == 1
    assert value(families, "x_handled_total", channel="slack") == 2
    assert value(families, "x_open") == 3
    assert value(families, "x_seconds_bucket", route="/a/{id}", le="0.1") == 1
    assert value(families, "x_seconds_bucket", route="/a/{id}", le="1") == 3
    assert value(families, "x_seconds_bucket", route="/a/{id}", le="+Inf") == 4
    assert value(families, "x_seconds_sum", route="/a/{id}") == pytest.approx(8.05)
    assert value(families, "vigil_service_info", service="alerts") == 1
    assert value(families, "process_resident_memory_bytes") > 0
    assert value(families, "process_cpu_seconds_total") > 0
    assert value(families, "process_start_time_seconds") > 1_600_000_000
    assert families["process_open_fds"]["type"] == "gauge"


def test_the_reader_refuses_what_prometheus_would() -> None:
    with pytest.raises(ValueError):
        parse("# HELP x_total X.\n# TYPE x_total counter\nx_total{a=b} 1\n")
    with pytest.raises(ValueError):
        parse("# HELP x X.\n# TYPE x counter\nx 1\n")  # a counter without _total
    with pytest.raises(ValueError):
        parse('# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_sum 1\nh_count 2\n')


def test_a_counter_only_goes_up_and_labels_are_fixed() -> None:
    counter = Registry().counter("y_total", "Y.", labels=("a",))
    with pytest.raises(ValueError):
        counter.inc(-1, a="x")
    with pytest.raises(ValueError):
        counter.inc(b="x")
    with pytest.raises(ValueError):
        Registry().counter("y", "no suffix")
