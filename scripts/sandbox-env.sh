# Sourced: start the sandbox in the background on a free port under $SANDBOX_LUA
# (default lua5.4), and export the variables that point every client at it.
# Defines sandbox_stop. Used by `make demo`.
SANDBOX_LUA=${SANDBOX_LUA:-lua5.4}
sandbox_out=$(mktemp)
"$SANDBOX_LUA" sandbox/bin/agentruns-sandbox --port 0 --step-delay "${SANDBOX_STEP_DELAY:-0.3}" --keepalive 5 \
  >"$sandbox_out" 2>&1 &
sandbox_pid=$!
sandbox_stop() {
  kill "$sandbox_pid" 2>/dev/null
  wait "$sandbox_pid" 2>/dev/null
  rm -f "$sandbox_out"
}
i=0
while ! grep -q '^listening on ' "$sandbox_out" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 150 ] || ! kill -0 "$sandbox_pid" 2>/dev/null; then
    cat "$sandbox_out" >&2
    sandbox_stop
    echo "the sandbox did not start" >&2
    exit 1
  fi
  sleep 0.1
done
SANDBOX_URL=$(sed -n 's/^listening on //p' "$sandbox_out" | head -n 1)
export SANDBOX_URL
export TOOLREGISTRY_API_KEY=tr_sandbox_key TOOLREGISTRY_BASE_URL="$SANDBOX_URL/toolregistry"
export HAPPYROBOT_API_KEY=hr_sandbox_key HAPPYROBOT_ORGANIZATION_ID=5a4d0b1e-7c3f-4e2a-9b61-0d8c2f4e6a10
export HAPPYROBOT_BASE_URL="$SANDBOX_URL/happyrobot"
export HUMM_API_KEY=pat_sandbox_humm HUMM_ORGANIZATION_ID=0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b
export HUMM_BASE_URL="$SANDBOX_URL/humm"
