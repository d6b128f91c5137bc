#!/usr/bin/env bash
# Create .venv (once) and install Vigil with pinned versions; re-runs are quick no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
extras="${1:-}"
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] \
    || [ clients/python/pyproject.toml -nt "$stamp" ] \
    || [ setup.py -nt "$stamp" ] || [ services/gateway/metrics/_rwscan.c -nt "$stamp" ]; then
    # an editable install compiles the C extensions into the source tree, so a changed
    # C source needs the install again
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".${extras:+[$extras]}"
    if [ "$extras" = "test" ]; then
        # the Python client (no dependencies of its own) is tested with the rest
        .venv/bin/python -m pip install --quiet --no-deps -e clients/python
    fi
    touch "$stamp"
fi
