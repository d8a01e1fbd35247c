#!/usr/bin/env bash
# Side by side, in one run on this machine: sseloop, axum (tokio) and
# nginx + nchan, each started on loopback, loaded with wrk and with
# sseloop's own load generator, then stopped (by the PID this script got).
# Prints a markdown table on stdout; the details go to stderr.
#
#   bash benches/compare.sh                 # everything
#   SUBSCRIBERS=2000 EVENTS=50 ROUNDS=1 bash benches/compare.sh   # a quicker run
#   BASE=ed73a5c PEERS="sseloop sseloop-base axum" bash benches/compare.sh
#     # also sseloop as of commit BASE (built in a worktree), for before/after
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${SUBSCRIBERS:-10000}
EVENTS=${EVENTS:-100}
STEADY_EVENTS=${STEADY_EVENTS:-250}   # at 50 events/s: 5 s
HOLD=${HOLD:-1000,5000,15000}
WRK_SECONDS=${WRK_SECONDS:-10}
ROUNDS=${ROUNDS:-3}                   # rounds of wrk and fan-out, interleaved
PEERS=${PEERS:-"sseloop axum nchan"}
BASE=${BASE:-}                        # the commit the sseloop-base peer is built from
WORK=$(mktemp -d /tmp/sseloop-compare.XXXXXX)
trap 'stop_all; git worktree remove --force "$WORK/base" 2>/dev/null || true; rm -rf "$WORK"' EXIT

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

say() { echo "compare: $*" >&2; }
# shellcheck source=benches/common.sh
source benches/common.sh

need() {
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  case " $PEERS " in *" nchan "*)
    [ -e /usr/share/nginx/modules/ngx_nchan_module.so ] || apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null ;;
  esac
}

build() {
  say "building sseloop (release)"
  cargo build --release --quiet --bin sseloop --example hello --example loadgen
  case " $PEERS " in *" sseloop-base "*)
    [ -n "$BASE" ] || { say "sseloop-base needs BASE=<commit>"; exit 1; }
    say "building sseloop at $BASE (release) in a worktree"
    git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
    (cd "$WORK/base" && CARGO_TARGET_DIR="$WORK/base-target" cargo build --release --quiet --bin sseloop --example hello) ;;
  esac
  case " $PEERS " in *" axum "*)
    say "building the axum peer (release)"
    cargo build --release --quiet --manifest-path benches/peers/axum/Cargo.toml ;;
  esac
}

# A port something else already listens on would be measured in place of
# the peer (its own bind fails quietly): refuse to start over it.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    say "port $1 is already in use: stop whatever listens there first"; exit 1
  fi
}

# start NAME: starts the peer's finite-stream server and hub; sets FINITE,
# HUB, SUB, PUB and SERVER_PID (the process whose memory `hold` measures).
start() {
  for port in 18201 18202 18211 18221 18231 18232; do port_free "$port"; done
  case "$1" in
    sseloop-base)
      "$WORK/base-target/release/examples/hello" --listen 127.0.0.1:18231 2>/dev/null & PIDS+=($!)
      "$WORK/base-target/release/sseloop" --listen 127.0.0.1:18232 --heartbeat 0 --history 1024 2>/dev/null & SERVER_PID=$!; PIDS+=($!)
      FINITE=18231; HUB=18232; SUB=/events?topic=bench; PUB=/publish?topic=bench ;;
    sseloop)
      ./target/release/examples/hello --listen 127.0.0.1:18201 2>/dev/null & PIDS+=($!)
      ./target/release/sseloop --listen 127.0.0.1:18202 --heartbeat 0 --history 1024 2>/dev/null & SERVER_PID=$!; PIDS+=($!)
      FINITE=18201; HUB=18202; SUB=/events?topic=bench; PUB=/publish?topic=bench ;;
    axum)
      ./benches/peers/axum/target/release/peer-axum 127.0.0.1:18211 2>/dev/null & SERVER_PID=$!; PIDS+=($!)
      FINITE=18211; HUB=18211; SUB=/sub; PUB=/pub ;;
    nchan)
      mkdir -p "$WORK/nginx"
      sed -e "s|@PORT@|18221|" -e "s|@PREFIX@|$WORK/nginx|" -e "s|@SSL@||" -e "s|@SSL_FILES@||" \
          -e "s|@MODULE@|load_module /usr/share/nginx/modules/ngx_nchan_module.so;|" \
          benches/peers/nginx/nginx.conf.in > "$WORK/nginx/nginx.conf"
      nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>/dev/null & PIDS+=($!)
      wait_port 18221
      SERVER_PID=$(pgrep -P "${PIDS[-1]}" | head -1)   # the worker holds the streams
      FINITE=18221; HUB=18221; SUB=/sub; PUB=/pub ;;
  esac
  wait_port "$FINITE"; wait_port "$HUB"
}


need
build


# The noisy, quick measurements (wrk and the fan-out) run ROUNDS times,
# interleaved across the servers in a rotating order, and the table gives
# the median of each, so one unlucky slice of this shared machine does not
# decide a ratio.
declare -A RPS FAN FAN_P99 LOSS FAN_CPU
read -ra PEER_LIST <<< "$PEERS"
for round in $(seq "$ROUNDS"); do
  # Each round starts with a different server, so none always runs first
  # (after the build) or always right after a particular peer's teardown.
  ORDER=()
  for i in "${!PEER_LIST[@]}"; do
    ORDER+=("${PEER_LIST[$(( (i + round - 1) % ${#PEER_LIST[@]} ))]}")
  done
  for peer in "${ORDER[@]}"; do
    say "== round $round: $peer"
    start "$peer"
    wrk_out=$(wrk -t1 -c50 -d"${WRK_SECONDS}s" "http://127.0.0.1:$FINITE/events" 2>&1)
    rps=$(echo "$wrk_out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    say "wrk: $rps req/s"
    fast=$(./target/release/examples/loadgen fanout --addr "127.0.0.1:$HUB" --subscribers "$SUBSCRIBERS" --events "$EVENTS" --sub-path "$SUB" --pub-path "$PUB" --pid "$SERVER_PID")
    say "$fast"
    RPS[$peer]+="${rps:-0} "
    FAN[$peer]+="$(echo "$fast" | field deliveries_per_s) "
    FAN_P99[$peer]+="$(echo "$fast" | field p99_ms) "
    FAN_CPU[$peer]+="$(echo "$fast" | field server_cpu_ms) "
    LOSS[$peer]+="$(echo "$fast" | field lost)/$(echo "$fast" | field duplicated)/$(echo "$fast" | field out_of_order) "
    stop_all
  done
done

echo "| server | finite stream req/s (wrk -t1 -c50 -d${WRK_SECONDS}s; median of $ROUNDS) | fan-out ${SUBSCRIBERS}×${EVENTS} deliveries/s (median of $ROUNDS) | p99 ms (median) | server CPU ms per fan-out (median) | lost/dup/ooo (each round) | p99 ms at 50 ev/s | RSS per idle stream (1k / 5k / 15k) |"
echo "|---|---|---|---|---|---|---|---|"
for peer in $PEERS; do
  say "== $peer: steady rate and idle streams"
  start "$peer"
  steady=$(./target/release/examples/loadgen fanout --addr "127.0.0.1:$HUB" --subscribers "$SUBSCRIBERS" --events "$STEADY_EVENTS" --rate 50 --sub-path "$SUB" --pub-path "$PUB")
  say "$steady"
  held=$(./target/release/examples/loadgen hold --addr "127.0.0.1:$HUB" --pid "$SERVER_PID" --streams "$HOLD" --sub-path "$SUB")
  say "$held"
  rss=$(echo "$held" | grep -o 'rss_per_stream_at_[0-9]*=[0-9]*B' | sed 's/.*=//' | paste -sd/ | sed 's|/| / |g')
  # shellcheck disable=SC2086 # the rounds' values, one word each
  echo "| $peer | $(median ${RPS[$peer]}) | $(median ${FAN[$peer]}) | $(median ${FAN_P99[$peer]}) | $(median ${FAN_CPU[$peer]}) | ${LOSS[$peer]% } | $(echo "$steady" | field p99_ms) | $rss |"
  say "$peer rounds: req/s ${RPS[$peer]}; deliveries/s ${FAN[$peer]}; server CPU ms ${FAN_CPU[$peer]}"
  stop_all
done
