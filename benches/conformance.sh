#!/usr/bin/env bash
# The reference hub's own conformance suites (dunglas/mercure's
# conformance-tests/, Playwright) against sseloop, on Debian's Chromium:
#   - tag v1.0.0-alpha.3 (Mercure 1.0, draft-08) against the default hub with
#     --issuer https://localhost --resource-identifier https://localhost/.well-known/mercure;
#   - tag v0.24.2 (Mercure 0.x) against the hub with --mercure-compat 0.x.
# Nothing of the suites is kept here: they are read from a clone of
# dunglas/mercure given as MERCURE_GIT (a git directory), and run from a
# temporary directory with a Playwright config that only points at
# /usr/bin/chromium.
#
#   MERCURE_GIT=/path/to/mercure/.git bash benches/conformance.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MERCURE_GIT:?a git directory of dunglas/mercure}"
command -v chromium >/dev/null || { echo "needs Debian's chromium" >&2; exit 1; }
cargo build --release -q -p sseloop-hub
work=$(mktemp -d)
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
KEY='!ChangeThisMercureHubJWTSecretKey!'

# run TAG PORT HUB-FLAGS...: the suite at TAG against a hub on PORT.
run() {
  local tag=$1 port=$2
  shift 2
  mkdir -p "$work/$tag"
  git --git-dir "$MERCURE_GIT" archive "$tag" conformance-tests | tar -x -C "$work/$tag"
  local dir="$work/$tag/conformance-tests"
  (cd "$dir" && npm install --no-audit --no-fund --silent)
  cat >"$dir/local.config.ts" <<'CONFIG'
import base from "./playwright.config";
export default {
  ...base,
  reporter: "list",
  projects: [{
    name: "chromium",
    use: {
      browserName: "chromium",
      launchOptions: {
        executablePath: "/usr/bin/chromium",
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"],
      },
    },
  }],
};
CONFIG
  ./target/release/sseloop --listen "127.0.0.1:$port" --jwt-key "$KEY" --anonymous "$@" 2>"$work/hub-$tag.log" &
  hub_pid=$!
  for _ in $(seq 50); do grep -q listening "$work/hub-$tag.log" && break; sleep 0.1; done
  echo "== $tag: sseloop $*"
  (cd "$dir" && BASE_URL="http://127.0.0.1:$port/.well-known/mercure" CI=1 \
    npx playwright test -c local.config.ts) | grep -E '✓|✘|passed|failed|flaky'
  kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true; hub_pid=
}

run v1.0.0-alpha.3 18431 --issuer https://localhost --resource-identifier https://localhost/.well-known/mercure
run v0.24.2 18432 --mercure-compat 0.x
