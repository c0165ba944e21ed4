#!/usr/bin/env bash
# backend-tls.sh: Switchyard with TLS to Redis (backend_tls), one or more
# binaries side by side, in alternating rounds.
#
# It makes a throwaway CA and a certificate for "redis.internal", starts a
# redis-server that listens with TLS only, and one Switchyard per binary
# in front of it (fixed upstream, backend_tls, GOMAXPROCS=1 unless set,
# as the harness runs Switchyard), each on a plain port of its own. Then it runs
# the same redis-benchmark test against the master's TLS port (the
# baseline) and each Switchyard, round after round, and prints requests
# per second and each process's CPU seconds. History, "Session 17", in
# bench/README.md has what it showed.
#
#   bench/backend-tls.sh [set|get] /tmp/switchyard-REV [/tmp/switchyard-REV2 ...]
#
# Needs redis-server and redis-benchmark built with TLS (Debian's are),
# and openssl.
#
# Environment: PORT (first loopback port, default 7201; it uses PORT and
# two more per binary), N (requests per test, default 100000), CLIENTS
# (default 50), PIPELINE (default 1), ROUNDS (default 5), GOMAXPROCS
# (Switchyard's, default 1).
set -euo pipefail

test=${1:?usage: bench/backend-tls.sh [set|get] SWITCHYARD_BINARY...}
shift
[ $# -gt 0 ] || { echo "usage: bench/backend-tls.sh [set|get] SWITCHYARD_BINARY..." >&2; exit 2; }
port=${PORT:-7201}
n=${N:-100000}
clients=${CLIENTS:-50}
pipeline=${PIPELINE:-1}
rounds=${ROUNDS:-5}

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 1 \
	-subj "/CN=backend-tls bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$dir/redis.key" -out "$dir/redis.csr" \
	-subj "/CN=redis.internal" 2>/dev/null
printf 'subjectAltName=DNS:redis.internal\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/redis.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
	-out "$dir/redis.pem" -days 1 -extfile "$dir/ext.cnf" 2>/dev/null

redis-server --port 0 --tls-port "$port" --tls-cert-file "$dir/redis.pem" --tls-key-file "$dir/redis.key" \
	--tls-ca-cert-file "$dir/ca.pem" --tls-auth-clients no --save "" --appendonly no \
	--logfile "$dir/redis.log" &
rpid=$!
pids+=("$rpid")

names=() ports=() spids=()
i=0
for bin in "$@"; do
	bin=$(realpath "$bin")
	p=$((port + 1 + 2 * i)) admin=$((port + 2 + 2 * i))
	printf 'admin_listen: 127.0.0.1:%s\ngroups:\n  - name: bench\n    listen: "127.0.0.1:%s"\n    upstream: "127.0.0.1:%s"\n    backend_tls: {ca_file: "%s", server_name: redis.internal}\n' \
		"$admin" "$p" "$port" "$dir/ca.pem" >"$dir/switchyard$i.yaml"
	GOMAXPROCS=${GOMAXPROCS:-1} "$bin" -config "$dir/switchyard$i.yaml" >"$dir/switchyard$i.log" 2>&1 &
	pids+=($!)
	spids+=($!)
	names+=("$(basename "$bin")")
	ports+=("$p")
	i=$((i + 1))
done
for p in "${ports[@]}"; do
	for _ in $(seq 100); do
		redis-cli -p "$p" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, ticks
secs() { awk -v t="$1" -v hz="$ticks" 'BEGIN {printf "%.2f", t / hz}'; }
bench() {
	redis-benchmark -p "$1" "${@:2}" -t "$test" -c "$clients" -P "$pipeline" -n "$n" --csv | tail -1 |
		cut -d, -f2 | tr -d '"'
}

printf '%-6s %-28s %10s %10s %10s\n' round endpoint rps redis-cpu proxy-cpu
for round in $(seq "$rounds"); do
	r0=$(cpu "$rpid")
	rps=$(bench "$port" --tls --cacert "$dir/ca.pem" --sni redis.internal)
	printf '%-6s %-28s %10.0f %10s %10s\n' "$round" "redis TLS (direct)" "$rps" "$(secs $(($(cpu "$rpid") - r0)))" -
	for j in "${!names[@]}"; do
		r0=$(cpu "$rpid") s0=$(cpu "${spids[$j]}")
		rps=$(bench "${ports[$j]}")
		printf '%-6s %-28s %10.0f %10s %10s\n' "$round" "${names[$j]}" "$rps" \
			"$(secs $(($(cpu "$rpid") - r0)))" "$(secs $(($(cpu "${spids[$j]}") - s0)))"
	done
done
