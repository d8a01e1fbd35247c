#!/usr/bin/env bash
# Scale-out measurements, in one run on this machine (issue 14):
#  1. publish throughput through Redis against the in-memory hub (events/s
#     and publish→delivery p50/p99), alternating rounds;
#  2. fan-out to SUBSCRIBERS spread over two --reuse-port hubs against one
#     hub, both through Redis: deliveries/s of a burst, p99 at 50 events/s;
#  3. what a reconnect with Last-Event-ID adds per replayed event;
#  4. presence at scale: PRESENCE_CLIENTS (100 000) idle streams over 8
#     --reuse-port hubs, then GET /clients page by page (1 000 a page):
#     each page's time, and every client listed once (issue 21).
# ONLY_PRESENCE=1 runs part 4 alone; PRESENCE_CLIENTS=0 skips it.
# Starts its own redis-server (no persistence) and hubs on loopback; stops
# them by PID.
#
#   bash benches/redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSCRIBERS=${SUBSCRIBERS:-10000}
ROUNDS=${ROUNDS:-3}
PORT=18261
RPORT=16401
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say() { echo "redis-bench: $*" >&2; }
cargo build --release --quiet --bin sseloop --example loadgen

# shellcheck source=benches/common.sh
source benches/common.sh   # field, median (its wait_port is replaced below)
PIDS=()
stop() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap 'stop; [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null' EXIT
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
URL="redis://127.0.0.1:$RPORT/0"

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.05; done; say "no hub on $PORT"; exit 1; }
hubs() { # hubs N [flags...]: N hub processes on $PORT
  local n=$1; shift
  for _ in $(seq "$n"); do
    ./target/release/sseloop --listen "127.0.0.1:$PORT" --heartbeat 0 --log-level warn "$@" 2>/dev/null & PIDS+=($!)
  done
  wait_port
}
fan() { ./target/release/examples/loadgen fanout --addr "127.0.0.1:$PORT" "$@"; }

PRESENCE_CLIENTS=${PRESENCE_CLIENTS:-100000}
if [ -z "${ONLY_REPLAY:-}" ] && [ -z "${ONLY_PRESENCE:-}" ]; then
# 1. Publish throughput: 100 subscribers, 3000 events, one publisher waiting for each answer.
declare -A EVS P50 P99
for round in $(seq "$ROUNDS"); do
  for kind in memory redis; do
    if [ "$kind" = redis ]; then redis-cli -p "$RPORT" flushall >/dev/null; hubs 1 --redis "$URL"; else hubs 1; fi
    out=$(fan --subscribers 100 --events 3000)
    say "publish $kind round $round: $out"
    secs=$(echo "$out" | field seconds)
    EVS[$kind]+="$(awk -v s="$secs" 'BEGIN {printf "%d", 3000 / s}') "
    P50[$kind]+="$(echo "$out" | field p50_ms) "; P99[$kind]+="$(echo "$out" | field p99_ms) "
    stop
  done
done
echo "| publish path | events/s (100 subscribers, 3000 events; median of $ROUNDS) | p50 ms | p99 ms | rounds (events/s) |"
echo "|---|---|---|---|---|"
for kind in memory redis; do
  # shellcheck disable=SC2086
  echo "| $kind | $(median ${EVS[$kind]}) | $(median ${P50[$kind]}) | $(median ${P99[$kind]}) | ${EVS[$kind]% } |"
done

# 2. Fan-out over two --reuse-port hubs against one, both through Redis.
echo
echo "| hubs (through Redis) | deliveries/s ${SUBSCRIBERS}×100 | p99 ms (burst) | lost/dup/ooo | p99 ms at 50 ev/s (250 events) |"
echo "|---|---|---|---|---|"
for n in 1 2; do
  redis-cli -p "$RPORT" flushall >/dev/null
  hubs "$n" --redis "$URL" --reuse-port
  burst=$(fan --subscribers "$SUBSCRIBERS" --events 100)
  steady=$(fan --subscribers "$SUBSCRIBERS" --events 250 --rate 50)
  say "fan-out $n hubs: $burst | $steady"
  echo "| $n | $(echo "$burst" | field deliveries_per_s) | $(echo "$burst" | field p99_ms) | $(echo "$burst" | field lost)/$(echo "$burst" | field duplicated)/$(echo "$burst" | field out_of_order) | $(echo "$steady" | field p99_ms) |"
  stop
done

fi
if [ -z "${ONLY_PRESENCE:-}" ]; then
# 3. Replay on reconnect: time to the first event without replay, and to
#    the last of 1000 replayed events, on a hub whose history mirrors Redis.
redis-cli -p "$RPORT" flushall >/dev/null
hubs 1 --redis "$URL" --history 2000
first=""
for i in $(seq 1001); do
  id=$(curl -s -X POST "http://127.0.0.1:$PORT/publish?topic=r" --data-binary "replayed event $i with some data")
  [ -z "$first" ] && first=$id
  last=$id
done
python3 - "$PORT" "$first" "$last" <<'PY'
import socket, sys, time
port, first, last = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def replay(last_id, want):
    s = socket.create_connection(("127.0.0.1", port))
    start = time.perf_counter()
    s.sendall(f"GET /events?topic=r HTTP/1.1\r\nHost: b\r\nLast-Event-ID: {last_id}\r\n\r\n".encode())
    buf, seen = b"", -1
    # The stream's first event is its seid; replayed events follow it.
    while seen < want:
        buf += s.recv(1 << 16)
        if b"event: seid" in buf:
            seen = buf.count(b"\ndata: replayed")
    took = time.perf_counter() - start
    s.close()
    return took
base = min(replay(last, 0) for _ in range(20))
full = min(replay(first, 1000) for _ in range(20))
print(f"\nreplay: a reconnect's stream to its first event {base*1e6:.0f} µs without replay, {full*1e6:.0f} µs to the last of 1000 replayed events: {(full-base)*1e6/1000:.2f} µs per replayed event (best of 20 each)")
PY
stop
fi

# 4. Presence at scale: idle streams held by several load generators (each
#    process may hold 20 000 files), listed across 8 hubs through Redis.
if [ "$PRESENCE_CLIENTS" -gt 0 ]; then
  redis-cli -p "$RPORT" flushall >/dev/null
  hubs 8 --redis "$URL" --reuse-port
  HOLDERS=$(( (PRESENCE_CLIENTS + 13999) / 14000 ))
  LOGS=$(mktemp -d)
  for h in $(seq "$HOLDERS"); do
    n=$(( PRESENCE_CLIENTS / HOLDERS ))
    [ "$h" -eq "$HOLDERS" ] && n=$(( PRESENCE_CLIENTS - n * (HOLDERS - 1) ))
    ./target/release/examples/loadgen hold --addr "127.0.0.1:$PORT" --pid "${PIDS[0]}" \
      --streams "$n" --sub-path "/events?topic=presence" --sources 32 --linger 600 \
      >"$LOGS/$h.out" 2>"$LOGS/$h.err" & PIDS+=($!)
  done
  opened=$(date +%s)
  for h in $(seq "$HOLDERS"); do
    until grep -q '^hold ' "$LOGS/$h.out" 2>/dev/null; do
      [ $(( $(date +%s) - opened )) -gt 300 ] && { say "holder $h never opened its streams"; cat "$LOGS/$h.err" >&2; exit 1; }
      sleep 0.5
    done
  done
  say "$PRESENCE_CLIENTS streams open after $(( $(date +%s) - opened )) s"
  python3 - "$PORT" "$RPORT" "$PRESENCE_CLIENTS" <<'PY'
import subprocess, sys, time, urllib.request
port, rport, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def written():
    keys = subprocess.run(["redis-cli", "-p", rport, "--scan", "--pattern", "*:clients:*"],
                          capture_output=True, text=True).stdout.split()
    return sum(int(subprocess.run(["redis-cli", "-p", rport, "hlen", k], capture_output=True,
                                  text=True).stdout) for k in keys), len(keys)
start = time.time()
while written()[0] < want and time.time() - start < 60:
    time.sleep(0.5)
held, hubs = written()
def pages():
    target, times, seids = "/clients", [], []
    while target:
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}") as r:
            body, link = r.read(), r.headers.get("Link")
        times.append((time.perf_counter() - t) * 1000)
        seids += [line for line in body.split(b'"seid":"')[1:]]
        target = link[1:link.index(">")] if link else None
    return times, len(seids), len(set(s.split(b'"')[0] for s in seids))
for round in (1, 2, 3):
    times, listed, distinct = pages()
    times.sort()
    print(f"presence round {round}: {held} clients in Redis over {hubs} hubs; GET /clients: "
          f"{len(times)} pages, p50 {times[len(times)//2]:.1f} ms, slowest {times[-1]:.1f} ms; "
          f"{listed} listed, {distinct} distinct")
PY
  stop
  rm -rf "$LOGS"
fi
