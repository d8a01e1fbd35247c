#!/usr/bin/env bash
# Mercure against native fan-out, side by side in one run on this machine:
# SUBSCRIBERS streams on /.well-known/mercure spread over 5 distinct
# matchers (each matches the published topic, so every update reaches every
# subscriber), against the same fan-out on the native /events. Rounds
# alternate between the two; the table gives medians. The hub runs with a
# JWT key, its subscribers and publisher send a token.
#
# PROTOCOL=1.0 (the default): Mercure 1.0, `match_urlpattern` URL Patterns
# and an RFC 9068 access token. PROTOCOL=0.x: URI templates (`topic=`) and a
# 0.x token, on a hub started with --mercure-compat 0.x.
#
#   bash benches/mercure.sh
#   SUBSCRIBERS=2000 EVENTS=50 ROUNDS=1 bash benches/mercure.sh   # quicker
#   FORM_EXTRA='&id=1795547422090348' bash benches/mercure.sh     # ids as long as native ones
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${SUBSCRIBERS:-10000}
EVENTS=${EVENTS:-100}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18241}
SECRET='!ChangeThisMercureHubJWTSecretKey!'
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say() { echo "mercure: $*" >&2; }

cargo build --release --quiet --bin sseloop --example loadgen

PROTOCOL=${PROTOCOL:-1.0}
# An HS256 token that may publish anywhere, made with openssl.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
if [ "$PROTOCOL" = 0.x ]; then
  header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  claims=$(printf '{"mercure":{"publish":["*"],"subscribe":[]}}' | b64url)
  HUB_FLAGS=(--mercure-compat 0.x)
else
  header=$(printf '{"alg":"HS256","typ":"at+jwt"}' | b64url)
  claims=$(printf '{"iss":"https://bench.test","aud":"https://bench.test/.well-known/mercure","exp":4102444800,"authorization_details":[{"type":"https://mercure.rocks/authorization-detail","actions":["publish"],"topics":[{"match":"*"}]}]}' | b64url)
  HUB_FLAGS=(--issuer https://bench.test --resource-identifier https://bench.test/.well-known/mercure)
fi
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)
TOKEN="$header.$claims.$signature"

enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
TOPIC="https://example.com/books/1"
if [ "$PROTOCOL" = 0.x ]; then
  PARAM=topic
  SELECTORS=(
    "https://example.com/books/{id}"
    "https://example.com/{+path}"
    "https://example.com/{kind}/{id}"
    "{+url}"
    "https://example.com/books/{id}{?q}"
  )
else
  PARAM=match_urlpattern
  SELECTORS=(
    "https://example.com/books/:id"
    "https://example.com/:kind/:id"
    "https://example.com/books/*"
    "https://example.com/*"
    "https://example.com/books/:id(\\d+)"
  )
fi
if [ -n "${ONE_SELECTOR:-}" ]; then SELECTORS=("${SELECTORS[0]}"); fi
MERCURE_SUB=""
for s in "${SELECTORS[@]}"; do
  MERCURE_SUB+="${MERCURE_SUB:+|}/.well-known/mercure?$PARAM=$(enc "$s")"
done

HUB_PID=
stop() { [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null || true; HUB_PID=; }
trap stop EXIT
start() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then say "port $PORT is in use"; exit 1; fi
  ./target/release/sseloop --listen "127.0.0.1:$PORT" --heartbeat 0 --jwt-key "$SECRET" "${HUB_FLAGS[@]}" --anonymous --log-level warn 2>/dev/null &
  HUB_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.05; done
  say "the hub did not start"; exit 1
}

# shellcheck source=benches/common.sh
source benches/common.sh   # field, median
declare -A FAN P99 LOSS
for round in $(seq "$ROUNDS"); do
  order=(native mercure); [ $((round % 2)) -eq 0 ] && order=(mercure native)
  for kind in "${order[@]}"; do
    start
    if [ "$kind" = native ]; then
      out=$(./target/release/examples/loadgen fanout --addr "127.0.0.1:$PORT" --subscribers "$SUBSCRIBERS" --events "$EVENTS" \
        --sub-path /events?topic=bench --pub-path /publish?topic=bench --header "Authorization: Bearer $TOKEN")
    else
      out=$(./target/release/examples/loadgen fanout --addr "127.0.0.1:$PORT" --subscribers "$SUBSCRIBERS" --events "$EVENTS" \
        --sub-path "$MERCURE_SUB" --pub-path /.well-known/mercure --form-topic "$(enc "$TOPIC")${FORM_EXTRA:-}" --header "Authorization: Bearer $TOKEN")
    fi
    say "round $round $kind: $out"
    FAN[$kind]+="$(echo "$out" | field deliveries_per_s) "
    P99[$kind]+="$(echo "$out" | field p99_ms) "
    LOSS[$kind]+="$(echo "$out" | field lost)/$(echo "$out" | field duplicated)/$(echo "$out" | field out_of_order) "
    stop
  done
done
echo "Mercure $PROTOCOL, selectors: ${SELECTORS[*]}"
echo "| path | deliveries/s ${SUBSCRIBERS}×${EVENTS} (median of $ROUNDS) | p99 ms (median) | lost/dup/ooo (each round) | rounds |"
echo "|---|---|---|---|---|"
for kind in native mercure; do
  # shellcheck disable=SC2086 # one word per round
  echo "| $kind | $(median ${FAN[$kind]}) | $(median ${P99[$kind]}) | ${LOSS[$kind]% } | ${FAN[$kind]% } |"
done
