#!/usr/bin/env bash
# Minting token bindings through a running myinfo-proxy, at 10% of its token store's cap and at
# the cap, in one command:
#
#   bash benches/mint_at_cap.sh
#
# One fresh proxy (its store holds 1,000,000 token bindings) in front of an nginx upstream that
# answers a FAPI PAR and token call; the login driver (benches/logins.rs) makes PAR + token
# pairs, each of which binds one new access token to one ephemeral key. Phases: fill to 10% of
# the cap, measure 50,000 more; fill to the cap, measure 100,000 more (each evicts one binding).
# Prints logins/s, the proxy's CPU per login (utime+stime from /proc) and its RSS per phase,
# as a markdown table. Pinned like benches/load.sh (proxy and upstream on core 0, the driver on
# core 1). Loopback only, every phase bounded in count and time; about 7 minutes here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT_BASE=${BENCH_PORT_BASE:-18580}
UP=$PORT_BASE
PX=$((PORT_BASE + 2))
CAP=1000000 # BINDINGS in src/proxy.rs

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'mint_at_cap.sh: %s\n' "$*" >&2; exit 1; }
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx is needed (benches/load.sh installs it)"
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1); else SERVER_CPU=(); CLIENT_CPU=(); fi

say "building the release binary and the login driver"
cd "$ROOT"
cargo build --release --bin myinfo-proxy >&2
DRIVER=$(cargo bench --no-run --bench logins --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep '/logins-' | head -n1)
[ -x "$DRIVER" ] || die "could not build benches/logins.rs"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/myinfo-proxy

WORK=$(mktemp -d "${TMPDIR:-/tmp}/myinfo-mint.XXXXXX")
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() {
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

ISS="http://127.0.0.1:$UP/fapi"
DISCOVERY="{\"issuer\":\"$ISS\",\"authorization_endpoint\":\"$ISS/auth\",\"pushed_authorization_request_endpoint\":\"$ISS/par\",\"token_endpoint\":\"$ISS/token\",\"userinfo_endpoint\":\"$ISS/userinfo\",\"jwks_uri\":\"$ISS/jwks\",\"token_endpoint_auth_methods_supported\":[\"private_key_jwt\"],\"dpop_signing_alg_values_supported\":[\"ES256\"]}"
mkdir -p "$WORK/up/logs" "$WORK/up/tmp"
cat >"$WORK/up/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/up/nginx.pid;
error_log $WORK/up/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    default_type application/json;
    client_body_temp_path $WORK/up/tmp/body;
    proxy_temp_path $WORK/up/tmp/proxy;
    fastcgi_temp_path $WORK/up/tmp/fastcgi;
    uwsgi_temp_path $WORK/up/tmp/uwsgi;
    scgi_temp_path $WORK/up/tmp/scgi;
    server {
        listen 127.0.0.1:$UP;
        location = /fapi/.well-known/openid-configuration { return 200 '$DISCOVERY'; }
        location = /fapi/jwks { return 200 '{"keys":[]}'; }
        location = /fapi/par { return 201 '{"request_uri":"urn:x","expires_in":60}'; }
        location = /fapi/token { return 200 '{"access_token":"\$request_id","token_type":"DPoP","expires_in":1800}'; }
    }
}
EOF
"${SERVER_CPU[@]}" "$NGINX" -p "$WORK/up" -e "$WORK/up/logs/error.log" -c "$WORK/up/nginx.conf" -g 'daemon off;' &
PIDS+=("$!")
wait_port "$UP" || die "upstream nginx did not listen"

"$BIN" keygen --out "$WORK/keys" >/dev/null
cat >"$WORK/proxy.toml" <<EOF
listen = "127.0.0.1:$PX"
client_id = "bench-client"
drain_timeout = "1s"

[admin]
enabled = false

[keys]
jwks_file = "keys/private-jwks.json"

[rate_limit]
enabled = false

[[upstream]]
name = "fapi"
kind = "singpass-fapi"
issuer = "$ISS"
EOF
RUST_LOG=warn "${SERVER_CPU[@]}" "$BIN" serve --config "$WORK/proxy.toml" 2>"$WORK/proxy.log" &
PROXY=$!
PIDS+=("$PROXY")
wait_port "$PX" || die "myinfo-proxy did not listen: $(cat "$WORK/proxy.log")"

drive() { # count, seconds
    MYINFO_BENCH_PROXY=127.0.0.1:$PX MYINFO_BENCH_LOGINS=$1 MYINFO_BENCH_CONCURRENCY=32 \
        MYINFO_BENCH_SECONDS=$2 timeout $(($2 + 30)) "${CLIENT_CPU[@]}" "$DRIVER"
}
ticks() { sed 's/.*) //' "/proc/$PROXY/stat" | awk '{print $12 + $13}'; }
for _ in $(seq 20); do drive 1 10 >/dev/null 2>&1 && break; sleep 0.5; done

ROWS=()
phase() { # label, count, seconds
    local before after out ok rate
    say "$1"
    before=$(ticks)
    out=$(drive "$2" "$3") || die "login driver failed: $out"
    after=$(ticks)
    ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$out")
    rate=$(sed -n 's/.* rate=\([0-9]*\)\/s.*/\1/p' <<<"$out")
    [ "$ok" = "$2" ] || die "$1: only $ok of $2 logins succeeded: $out"
    ROWS+=("| $1 | $ok | $rate | $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$ok" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}') µs | $(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PROXY/status") MiB |")
}
phase "fill to 10% of the cap" $((CAP / 10)) 300
phase "at 10% of the cap (measured)" $((CAP / 20)) 300
phase "fill to the cap" $((CAP - CAP / 10 - CAP / 20)) 900
phase "at the cap, each login evicts one (measured)" $((CAP / 10)) 300

echo "| phase | logins | logins/s | proxy CPU per login | proxy VmRSS after |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
