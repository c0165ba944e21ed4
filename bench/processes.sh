#!/usr/bin/env bash
# processes.sh: where the CPU goes in one redis-benchmark test, direct
# and through Switchyard, process by process.
#
# It starts a Redis master with one replica and Switchyard in front of the
# master (fixed upstream, GOMAXPROCS=1, as the harness runs it), then runs
# the same redis-benchmark test against each in alternating rounds and
# prints, per round: requests per second; the CPU seconds of
# redis-benchmark, the master, the replica and Switchyard; the machine's
# idle CPU seconds; and how many commands the master read per read
# (INFO stats, total_reads_processed). History, "Session 15", in
# bench/README.md has what it showed.
#
#   bench/processes.sh /tmp/switchyard-REV [set|get] [clients] [rounds]
#
# Needs redis-server, redis-cli and redis-benchmark (Debian: redis-server,
# redis-tools) and GNU time (Debian: time).
#
# Environment: PORT (first of four loopback ports, default 7101), N
# (requests per test, default 200000), PIPELINE (default 1).
set -euo pipefail

bin=$(realpath "${1:?usage: bench/processes.sh SWITCHYARD_BINARY [set|get] [clients] [rounds]}")
test=${2:-set}
clients=${3:-50}
rounds=${4:-3}
port=${PORT:-7101}
n=${N:-200000}
pipeline=${PIPELINE:-1}
master=$port replica=$((port + 1)) proxy=$((port + 2)) admin=$((port + 3))

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port "$master" --save "" --appendonly no --logfile "$dir/master.log" &
mpid=$!
pids+=("$mpid")
redis-server --port "$replica" --save "" --appendonly no --replicaof 127.0.0.1 "$master" --logfile "$dir/replica.log" &
rpid=$!
pids+=("$rpid")
printf 'admin_listen: 127.0.0.1:%s\ngroups:\n  - {name: bench, listen: "127.0.0.1:%s", upstream: "127.0.0.1:%s"}\n' \
	"$admin" "$proxy" "$master" >"$dir/switchyard.yaml"
GOMAXPROCS=1 "$bin" -config "$dir/switchyard.yaml" >"$dir/switchyard.log" 2>&1 &
spid=$!
pids+=("$spid")
for _ in $(seq 100); do
	if redis-cli -p "$proxy" ping >/dev/null 2>&1 &&
		[ "$(redis-cli -p "$replica" info replication | tr -d '\r' | grep -c 'master_link_status:up')" = 1 ]; then
		break
	fi
	sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }      # utime + stime, ticks
idle() { awk '/^cpu /{print $5 + $6}' /proc/stat; }     # idle + iowait, ticks
stat() { redis-cli -p "$master" info stats | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2}'; }
secs() { awk -v t="$1" -v hz="$ticks" 'BEGIN {printf "%.2f", t / hz}'; }

printf '%-6s %-10s %9s %7s %7s %8s %7s %6s %9s\n' round endpoint rps bench master replica proxy idle cmds/read
for round in $(seq "$rounds"); do
	for ep in direct switchyard; do
		target=$master
		[ "$ep" = switchyard ] && target=$proxy
		m0=$(cpu "$mpid") r0=$(cpu "$rpid") s0=$(cpu "$spid") i0=$(idle)
		reads0=$(stat total_reads_processed) cmds0=$(stat total_commands_processed)
		out=$({ /usr/bin/time -f 'bench %U %S' redis-benchmark -p "$target" -t "$test" -c "$clients" \
			-P "$pipeline" -n "$n" --csv | tail -1; } 2>&1)
		m1=$(cpu "$mpid") r1=$(cpu "$rpid") s1=$(cpu "$spid") i1=$(idle)
		reads1=$(stat total_reads_processed) cmds1=$(stat total_commands_processed)
		rps=$(echo "$out" | grep -v '^bench' | cut -d, -f2 | tr -d '"')
		bench=$(echo "$out" | awk '/^bench/{print $2 + $3}')
		proxyCPU=-
		[ "$ep" = switchyard ] && proxyCPU=$(secs $((s1 - s0)))
		printf '%-6s %-10s %9.0f %7s %7s %8s %7s %6s %9s\n' "$round" "$ep" "$rps" "$bench" \
			"$(secs $((m1 - m0)))" "$(secs $((r1 - r0)))" "$proxyCPU" "$(secs $((i1 - i0)))" \
			"$(awk -v c=$((cmds1 - cmds0)) -v r=$((reads1 - reads0)) 'BEGIN {printf "%.1f", c / r}')"
	done
done
