#!/usr/bin/env bash
# Install (first run only) and start the whole system: embedded NATS, SQLite, all six services.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/vigil up "$@"
