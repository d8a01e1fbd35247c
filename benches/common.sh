# Shell helpers the benchmark scripts share (sourced, never run). A script
# defines `say` (its own prefix on stderr) before it calls these.

# The PIDs of the servers a script started; stop_all stops those alone.
PIDS=()
stop_all() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (5 s at most).
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  say "nothing listens on port $1"; return 1
}

# field NAME: the value of NAME=… in a load generator's summary line on stdin.
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

# median VALUES...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
