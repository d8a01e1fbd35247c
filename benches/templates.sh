#!/usr/bin/env bash
# What a publish costs when many templates are subscribed that it does not
# match: IDLE Mercure subscribers, each with its own URI template that the
# published topic never matches, and one subscriber whose template does.
# The figure is the publish-to-delivery latency that one subscriber sees
# (p50, p99), for the hub as built now and, with BASE=<commit>, as of that
# commit, side by side in one run (rounds alternate). Two kinds of idle
# templates: each under its own literal prefix (`…/users/{i}/{id}`), and all
# under the published topic's own prefix (`…/books/{id}/v{i}`), which the
# prefix index cannot set aside and the literal skeleton must.
#
#   bash benches/templates.sh
#   BASE=4704053 bash benches/templates.sh      # beside the hub before issue 21
#   IDLE=2000 EVENTS=100 ROUNDS=1 bash benches/templates.sh   # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE=${IDLE:-10000}
EVENTS=${EVENTS:-200}
RATE=${RATE:-100}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18251}
BASE=${BASE:-}
SECRET='!ChangeThisMercureHubJWTSecretKey!'
WORK=$(mktemp -d /tmp/sseloop-templates.XXXXXX)
HUB_PID=
stop() { [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null || true; HUB_PID=; }
trap 'stop; git worktree remove --force "$WORK/base" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say() { echo "templates: $*" >&2; }

cargo build --release --quiet --bin sseloop --example loadgen
PEERS=(now)
if [ -n "$BASE" ]; then
  say "building the hub as of $BASE in a worktree"
  git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
  (cd "$WORK/base" && CARGO_TARGET_DIR="$WORK/base-target" cargo build --release --quiet --bin sseloop)
  PEERS+=(base)
fi

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
claims=$(printf '{"mercure":{"publish":["*"]}}' | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)
TOKEN="$header.$claims.$signature"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="").replace("%7Bi%7D", "{i}"))' "$1"; }

TOPIC="https://example.com/books/1"
MATCHING="/.well-known/mercure?topic=$(enc "https://example.com/books/{id}")"
declare -A IDLE_PATH=(
  [own_prefix]="/.well-known/mercure?topic=$(enc "https://example.com/users/{i}/{id}")"
  [shared_prefix]="/.well-known/mercure?topic=$(enc "https://example.com/books/{id}/v{i}")"
)

start() {
  local bin=./target/release/sseloop extra=(--max-templates $((IDLE + 100)))
  if [ "$1" = base ]; then
    bin="$WORK/base-target/release/sseloop"
    # A base from before the flag had no such limit.
    "$bin" --help | grep -- --max-templates >/dev/null || extra=()
  fi
  # URI templates are Mercure 0.x: a hub that speaks 1.0 by default takes
  # them (and their 0.x token) with the compatibility flag.
  if "$bin" --help | grep -- --mercure-compat >/dev/null; then extra+=(--mercure-compat 0.x); fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then say "port $PORT is in use"; exit 1; fi
  "$bin" --listen "127.0.0.1:$PORT" --heartbeat 0 --jwt-key "$SECRET" --anonymous --log-level warn "${extra[@]}" 2>/dev/null &
  HUB_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.05; done
  say "the hub did not start"; exit 1
}

# shellcheck source=benches/common.sh
source benches/common.sh   # field, median
declare -A P50 P99 LOSS
for round in $(seq "$ROUNDS"); do
  for kind in own_prefix shared_prefix; do
    order=("${PEERS[@]}")
    [ $((round % 2)) -eq 0 ] && [ ${#PEERS[@]} -eq 2 ] && order=(base now)
    for peer in "${order[@]}"; do
      start "$peer"
      out=$(./target/release/examples/loadgen fanout --addr "127.0.0.1:$PORT" --subscribers 1 --events "$EVENTS" --rate "$RATE" \
        --idle "$IDLE" --idle-path "${IDLE_PATH[$kind]}" --sub-path "$MATCHING" \
        --pub-path /.well-known/mercure --form-topic "$(enc "$TOPIC")" --header "Authorization: Bearer $TOKEN")
      say "round $round $kind $peer: $out"
      P50[$peer.$kind]+="$(echo "$out" | field p50_ms) "
      P99[$peer.$kind]+="$(echo "$out" | field p99_ms) "
      LOSS[$peer.$kind]+="$(echo "$out" | field lost)/$(echo "$out" | field duplicated)/$(echo "$out" | field out_of_order) "
      stop
    done
  done
done
echo "| hub | idle templates | publish → delivery p50 ms (median of $ROUNDS) | p99 ms (median) | lost/dup/ooo | p50 each round |"
echo "|---|---|---|---|---|---|"
for kind in own_prefix shared_prefix; do
  for peer in "${PEERS[@]}"; do
    # shellcheck disable=SC2086 # one word per round
    echo "| $peer | $IDLE, $kind | $(median ${P50[$peer.$kind]}) | $(median ${P99[$peer.$kind]}) | ${LOSS[$peer.$kind]% } | ${P50[$peer.$kind]% } |"
  done
done
