#!/usr/bin/env bash
# Run the test suite the way CI does: a virtual environment of its own (.venv, or $VENV),
# every extra installed (the training tests need TensorFlow),
# edge-infer installed into it as a user would install it (not editable), then ruff (the bug-finding
# rules in pyproject.toml), then pytest.
# Extra arguments go to pytest:  scripts/test.sh -k cli -x
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade --force-reinstall --no-deps .
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ".[dev,image,train,bench]"
"$VENV/bin/python" -m ruff check --quiet .
exec "$VENV/bin/python" -m pytest "$@"
