#!/usr/bin/env bash
# Listener flood benchmark of myinfo-proxy on loopback, in one command:
#
#   bash benches/listener_flood.sh
#
# (A) 2,000 connections that each send one header byte and stop (slowloris), against the
#     shipped listener defaults (header_read_timeout 10 s): the latency of normal requests and
#     of /healthz while they are open, how long each slow connection stays open, and the
#     proxy's RSS before the flood, at its peak, and after the slow connections are gone.
# (B) the proxy under `ulimit -n 512` with 1,000 idle connections: /healthz, the caps the proxy
#     chose for that limit, connections refused, and accept-failure log lines per second.
#
# The upstream is python3's http.server behind a passthrough route. Every loop is bounded in
# count and time; everything listens on 127.0.0.1 only. Prints a markdown report (stdout).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLOW=${FLOOD_SLOW:-2000}
IDLE=${FLOOD_IDLE:-1000}
SAMPLES=${FLOOD_SAMPLES:-20}
HEADER_TIMEOUT_S=10   # the shipped default of listener.main.header_read_timeout
# A descriptor limit well above the flood, within the hard limit.
HIGH=$(ulimit -Hn); if [ "$HIGH" = unlimited ] || [ "$HIGH" -gt 65536 ]; then HIGH=65536; fi
[ "$HIGH" -ge $((2 * SLOW + 500)) ] || { echo "listener_flood.sh: the hard open-file limit ($HIGH) is too low for $SLOW connections" >&2; exit 1; }

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'listener_flood.sh: %s\n' "$*" >&2; exit 1; }
for tool in cargo python3 curl awk; do command -v "$tool" >/dev/null || die "$tool is needed"; done

# FLOOD_BIN=path measures another build (A/B) instead of building this tree's.
if [ -n "${FLOOD_BIN:-}" ]; then
    BIN=$FLOOD_BIN
else
    say "building the release binary"
    (cd "$ROOT" && cargo build --release --quiet)
    BIN=$ROOT/target/release/myinfo-proxy
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PX=$(free_port); AD=$(free_port)

mkdir -p "$WORK/www"
echo ok > "$WORK/www/index.html"
python3 -m http.server "$UP" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)
(cd "$WORK" && "$BIN" keygen --out keys >/dev/null)
cat > "$WORK/config.toml" <<EOF
listen = "127.0.0.1:$PX"
client_id = "STG-BENCH"
[admin]
listen = "127.0.0.1:$AD"
[keys]
jwks_file = "keys/private-jwks.json"
[[upstream]]
kind = "passthrough"
base_url = "http://127.0.0.1:$UP"
local_prefix = "/pass"
EOF

# Opens N connections (sending FIRST bytes on each), reports when all are open, and waits (at most
# HOLD seconds) for the server to close each; prints JSON with how long each stayed open.
cat > "$WORK/flood.py" <<'EOF'
import asyncio, json, sys, time
port, n, first, hold, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4]), sys.argv[5]
async def one(i, opened, lifetimes):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        lifetimes.append(None); return
    start = time.monotonic()
    if first:
        w.write(first); await w.drain()
    opened.append(1)
    try:
        await asyncio.wait_for(r.read(65536), timeout=hold)
        lifetimes.append(time.monotonic() - start)
    except asyncio.TimeoutError:
        lifetimes.append(-1.0)   # still open after HOLD seconds
    except OSError:
        lifetimes.append(time.monotonic() - start)
    w.close()
async def main():
    opened, lifetimes = [], []
    tasks = [asyncio.create_task(one(i, opened, lifetimes)) for i in range(n)]
    while len(opened) + lifetimes.count(None) < n:
        await asyncio.sleep(0.01)
    open(ready, "w").write(str(len(opened)))
    await asyncio.gather(*tasks)
    closed = sorted(x for x in lifetimes if x is not None and x >= 0)
    print(json.dumps({"connected": len(opened), "closed": len(closed),
                      "still_open": lifetimes.count(-1.0), "connect_failed": lifetimes.count(None),
                      "refused_at_once": sum(1 for x in closed if x < 0.5),
                      "max_s": closed[-1] if closed else None,
                      "median_s": closed[len(closed)//2] if closed else None}))
asyncio.run(main())
EOF

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# A metric's value (0 when the series does not exist yet).
metric() { curl -s "http://127.0.0.1:$AD/metrics" | awk -v m="$1" 'index($0, m) == 1 {v = $2} END {print v + 0}'; }
# Median and max in ms of SAMPLES timed GETs of URL; also the worst status seen.
timed() {
    local url=$1 times=() status worst=200
    for _ in $(seq "$SAMPLES"); do
        read -r status t < <(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$url" || echo "000 5")
        [ "$status" = 200 ] || worst=$status
        times+=("$t")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v w="$worst" '{a[NR]=$1} END {printf "%.1f ms median, %.1f ms max (status %s)", a[int((NR+1)/2)]*1000, a[NR]*1000, w}'
}
wait_up() {
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$AD/healthz" && return 0; sleep 0.1; done
    die "the proxy did not start"
}

# ---------------------------------------------------------------- (A) slowloris
say "(A) $SLOW slow connections against the default limits"
(ulimit -n $HIGH && MYINFO_PROXY_LOG_FORMAT=json exec "$BIN" serve --config "$WORK/config.toml") 2> "$WORK/a.log" &
A_PID=$!; PIDS+=($A_PID)
wait_up
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PX/pass/"; done
sleep 1
RSS_BEFORE=$(rss_kib $A_PID)
BASE_REQ=$(timed "http://127.0.0.1:$PX/pass/")
(ulimit -n $HIGH && exec python3 "$WORK/flood.py" "$PX" "$SLOW" G $((HEADER_TIMEOUT_S + 20)) "$WORK/a.ready") > "$WORK/a.json" &
FLOOD=$!; PIDS+=($FLOOD)
for _ in $(seq 300); do [ -s "$WORK/a.ready" ] && break; sleep 0.1; done
[ -s "$WORK/a.ready" ] || die "the flood client did not open its connections"
OPEN_DURING=$(metric 'myinfo_proxy_open_connections{listener="main"}')
RSS_PEAK=$(rss_kib $A_PID)
DURING_REQ=$(timed "http://127.0.0.1:$PX/pass/")
DURING_HEALTH=$(timed "http://127.0.0.1:$AD/healthz")
timeout $((HEADER_TIMEOUT_S + 40)) tail --pid=$FLOOD -f /dev/null || die "the flood client did not finish"
sleep 2
RSS_AFTER=$(rss_kib $A_PID)
OPEN_AFTER=$(metric 'myinfo_proxy_open_connections{listener="main"}')
REFUSED_A=$(metric 'myinfo_proxy_connections_refused_total{listener="main"}')
A_JSON=$(cat "$WORK/a.json")
kill $A_PID; wait $A_PID 2>/dev/null || true

# ---------------------------------------------------------------- (B) ulimit -n 512
say "(B) $IDLE idle connections with ulimit -n 512"
(ulimit -n 512 && MYINFO_PROXY_LOG_FORMAT=json exec "$BIN" serve --config "$WORK/config.toml") 2> "$WORK/b.log" &
B_PID=$!; PIDS+=($B_PID)
wait_up
B_START=$(date +%s.%N)
(ulimit -n $HIGH && exec python3 "$WORK/flood.py" "$PX" "$IDLE" "" 8 "$WORK/b.ready") > "$WORK/b.json" &
FLOOD=$!; PIDS+=($FLOOD)
for _ in $(seq 300); do [ -s "$WORK/b.ready" ] && break; sleep 0.1; done
B_HEALTH=$(timed "http://127.0.0.1:$AD/healthz")
B_REQ=$(timed "http://127.0.0.1:$PX/pass/")
B_OPEN=$(metric 'myinfo_proxy_open_connections{listener="main"}')
B_REFUSED=$(metric 'myinfo_proxy_connections_refused_total{listener="main"}')
B_ACCEPT_ERRORS=$(metric 'myinfo_proxy_accept_errors_total{listener="main"}')
timeout 60 tail --pid=$FLOOD -f /dev/null || die "the flood client did not finish"
B_SECONDS=$(awk -v s="$B_START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
B_JSON=$(cat "$WORK/b.json")
kill $B_PID; wait $B_PID 2>/dev/null || true
CAP_LINE=$(grep -o 'using [0-9]* and [0-9]*' "$WORK/b.log" | head -1 || true)
ACCEPT_LINES=$(grep -c 'accept failed' "$WORK/b.log" || true)
# The most accept-failure lines within one second of the log's timestamps.
MAX_PER_S=$(awk '/accept failed/ { if (match($0, /"timestamp":"[^"]*"/)) c[substr($0, RSTART + 13, 19)]++ } END { m = 0; for (k in c) if (c[k] > m) m = c[k]; print m }' "$WORK/b.log")

cat <<EOF
### listener_flood.sh ($(date -u +%Y-%m-%d), $(nproc) cores, loopback)

**(A) $SLOW connections that each send one header byte** (shipped defaults: header_read_timeout ${HEADER_TIMEOUT_S} s, max_connections 4096; proxy and client under \`ulimit -n $HIGH\`)

| measure | value |
|---|---|
| normal request (passthrough) before the flood | $BASE_REQ |
| normal request while the slow connections are open | $DURING_REQ |
| /healthz while they are open | $DURING_HEALTH |
| open connections on the main listener (metric) during / after | $OPEN_DURING / $OPEN_AFTER |
| slow connections: client's account | \`$A_JSON\` |
| connections refused (over the cap) | $REFUSED_A |
| RSS before / peak / after (KiB) | $RSS_BEFORE / $RSS_PEAK / $RSS_AFTER ($(awk -v a="$RSS_AFTER" -v b="$RSS_BEFORE" 'BEGIN {printf "%+.1f%%", (a-b)*100/b}') after vs before) |

**(B) $IDLE idle connections, proxy under \`ulimit -n 512\`** (held up to 8 s)

| measure | value |
|---|---|
| caps chosen at start-up | ${CAP_LINE:-unchanged} |
| /healthz while they are open | $B_HEALTH |
| normal request while they are open (the main listener is full: refused) | $B_REQ |
| open / refused connections on the main listener (metrics) | $B_OPEN / $B_REFUSED |
| accept errors (metric) | $B_ACCEPT_ERRORS |
| accept-failure log lines in ${B_SECONDS} s (most in one second) | $ACCEPT_LINES ($MAX_PER_S) |
| idle connections: client's account | \`$B_JSON\` |
EOF
