#!/usr/bin/env bash
# The test suite: set up .venv if needed, then run pytest (arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-venv.sh
exec .venv/bin/python -m pytest -q "$@"
