#!/usr/bin/env bash
# Create (or refresh) the local .venv: CPU PyTorch pinned explicitly, then this package.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
stamp=".venv/.rnn-ime-installed"
want="$(cat pyproject.toml scripts/setup-venv.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/rnn-ime ]; then
    exit 0
fi
echo "setting up .venv (first run: about a minute)" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# An unpinned torch would pull a multi-GB CUDA build; 2.13.0 has a CPU wheel on these machines.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".[dev]"
echo "$want" > "$stamp"
