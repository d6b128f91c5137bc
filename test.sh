#!/usr/bin/env bash
# Install (first run only) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    # the dashboard tests drive a real browser
    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
        || echo "could not install chromium; browser tests will be skipped" >&2
fi
if ! command -v prometheus-node-exporter >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    # the scrape tests read a real node_exporter
    (apt-get install -y -q prometheus-node-exporter >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q prometheus-node-exporter >/dev/null)) \
        || echo "could not install prometheus-node-exporter; its scrape test will be skipped" >&2
fi
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    # the remote-write tests run a real Prometheus against the gateway
    (apt-get install -y -q prometheus >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null)) \
        || echo "could not install prometheus; remote-write tests with it will be skipped" >&2
fi
if ! command -v victoria-metrics >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    # the remote-write forwarding and remote PromQL tests run a real VictoriaMetrics
    (apt-get install -y -q victoria-metrics >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q victoria-metrics >/dev/null)) \
        || echo "could not install victoria-metrics; remote store tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
