#!/usr/bin/env bash
# HTTPS side by side, in one run on this machine: the hub over plain TCP,
# the same hub over TLS (--tls-cert), nginx + nchan over TLS, and (with
# BASE) the hub's plain path as of commit BASE. Each is started on
# loopback, loaded by sseloop's load generator (rustls' client, sessions
# never resumed), then stopped by the PID this script got. A markdown
# table on stdout; the details on stderr.
#
#   bash benches/tls.sh
#   BASE=3309d8d bash benches/tls.sh           # also the plain path before this change
#   SUBSCRIBERS=2000 EVENTS=50 ROUNDS=1 bash benches/tls.sh   # a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${SUBSCRIBERS:-10000}
EVENTS=${EVENTS:-100}
ROUNDS=${ROUNDS:-3}
HOLD=${HOLD:-1000,5000,10000}
HANDSHAKE_SECONDS=${HANDSHAKE_SECONDS:-10}
BASE=${BASE:-}
PEERS="sseloop sseloop-tls nchan-tls${BASE:+ sseloop-base}"
WORK=$(mktemp -d /tmp/sseloop-tls.XXXXXX)
trap 'stop_all; git worktree remove --force "$WORK/base" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

say() { echo "tls: $*" >&2; }
# shellcheck source=benches/common.sh
source benches/common.sh

[ -e /usr/share/nginx/modules/ngx_nchan_module.so ] || apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null

say "building (release)"
cargo build --release --quiet --bin sseloop --example loadgen
if [ -n "$BASE" ]; then
  git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
  (cd "$WORK/base" && CARGO_TARGET_DIR="$WORK/base-target" cargo build --release --quiet --bin sseloop)
fi

# A CA and a P-256 certificate for localhost signed by it, made here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=bench-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$WORK/ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 1 -extfile "$WORK/ext" -out "$WORK/cert.pem" 2>/dev/null

# start NAME: sets PORT, SUB, PUB, HEALTH, SERVER_PID and TLS_FLAG.
start() {
  local hub=(--heartbeat 0 --history 1024)
  local tls=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  TLS_FLAG=(--tls "$WORK/ca.pem"); SUB=/events?topic=bench; PUB=/publish?topic=bench; HEALTH=/health
  case "$1" in
    sseloop)      PORT=18401; TLS_FLAG=(); ./target/release/sseloop --listen 127.0.0.1:$PORT "${hub[@]}" 2>/dev/null & ;;
    sseloop-base) PORT=18402; TLS_FLAG=(); "$WORK/base-target/release/sseloop" --listen 127.0.0.1:$PORT "${hub[@]}" 2>/dev/null & ;;
    sseloop-tls)  PORT=18403; ./target/release/sseloop --listen 127.0.0.1:$PORT "${hub[@]}" "${tls[@]}" 2>/dev/null & ;;
    nchan-tls)
      PORT=18404; SUB=/sub; PUB=/pub; HEALTH=/events
      mkdir -p "$WORK/nginx"
      sed -e "s|@PORT@|$PORT|" -e "s|@PREFIX@|$WORK/nginx|" -e "s|@SSL@|ssl|" \
          -e "s|@SSL_FILES@|ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_session_tickets off; ssl_session_cache off;|" \
          -e "s|@MODULE@|load_module /usr/share/nginx/modules/ngx_nchan_module.so;|" \
          benches/peers/nginx/nginx.conf.in > "$WORK/nginx/nginx.conf"
      nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>/dev/null & ;;
  esac
  PIDS+=($!); SERVER_PID=$!
  wait_port "$PORT"
  # nginx: the worker holds the connections.
  [ "$1" = nchan-tls ] && SERVER_PID=$(pgrep -P "$SERVER_PID" | head -1)
  return 0
}


declare -A FAN CPU LOSS
read -ra PEER_LIST <<< "$PEERS"
for round in $(seq "$ROUNDS"); do
  ORDER=()
  for i in "${!PEER_LIST[@]}"; do ORDER+=("${PEER_LIST[$(( (i + round - 1) % ${#PEER_LIST[@]} ))]}"); done
  for peer in "${ORDER[@]}"; do
    say "== round $round: $peer"
    start "$peer"
    out=$(./target/release/examples/loadgen fanout --addr "127.0.0.1:$PORT" --subscribers "$SUBSCRIBERS" \
      --events "$EVENTS" --sub-path "$SUB" --pub-path "$PUB" --pid "$SERVER_PID" "${TLS_FLAG[@]}")
    say "$out"
    FAN[$peer]+="$(echo "$out" | field deliveries_per_s) "
    CPU[$peer]+="$(echo "$out" | field server_cpu_ms) "
    LOSS[$peer]+="$(echo "$out" | field lost)/$(echo "$out" | field duplicated)/$(echo "$out" | field out_of_order) "
    stop_all
  done
done

echo "| server | fan-out ${SUBSCRIBERS}×${EVENTS} deliveries/s (median of $ROUNDS) | server CPU ms per fan-out (median) | lost/dup/ooo (each round) | full handshakes/s (50 connections, ${HANDSHAKE_SECONDS} s) | server CPU µs per handshake + request | RSS per idle stream ($HOLD) |"
echo "|---|---|---|---|---|---|---|"
for peer in $PEERS; do
  start "$peer"
  hs="—"; hs_cpu="—"
  if [ ${#TLS_FLAG[@]} -gt 0 ]; then
    out=$(./target/release/examples/loadgen rps --addr "127.0.0.1:$PORT" --connections 50 --seconds "$HANDSHAKE_SECONDS" \
      --path "$HEALTH" --new-connection --pid "$SERVER_PID" "${TLS_FLAG[@]}")
    say "$peer handshakes: $out"
    hs=$(echo "$out" | field responses_per_s); hs_cpu=$(echo "$out" | field server_cpu_us_per_response)
  fi
  stop_all; start "$peer"
  held=$(./target/release/examples/loadgen hold --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --streams "$HOLD" \
    --sub-path "$SUB" "${TLS_FLAG[@]}")
  say "$peer hold: $held"
  rss=$(echo "$held" | grep -o 'rss_per_stream_at_[0-9]*=[0-9]*B' | sed 's/.*=//' | paste -sd/ | sed 's|/| / |g')
  # shellcheck disable=SC2086 # the rounds' values, one word each
  echo "| $peer | $(median ${FAN[$peer]}) | $(median ${CPU[$peer]}) | ${LOSS[$peer]% } | $hs | $hs_cpu | $rss |"
  say "$peer rounds: deliveries/s ${FAN[$peer]}; server CPU ms ${CPU[$peer]}"
  stop_all
done
