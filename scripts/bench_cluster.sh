#!/usr/bin/env bash
# scripts/bench.sh cluster [R]: two holdfast nodes sharing a throwaway PostgreSQL
# (scripts/postgres.sh), behind Kamailio with deploy/kamailio/kamailio.cfg; SIPp places R
# calls/s through Kamailio for DURATION (60) s, each caller staying 2 s. Reports failed
# calls, INVITE->200 p50/p99 (through Kamailio), each node's CPU, Kamailio's and
# PostgreSQL's CPU over the steady window, and the store's transactions and statements per
# call (pg_stat_database / pg_stat_user_tables deltas over the same window).
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${1:-200}
duration=${DURATION:-60}
window=$((duration - 15))
n=$((rate * 2))
out=target/bench
mkdir -p "$out"
source scripts/bench_lib.sh
calls=$((rate * duration))
command -v kamailio >/dev/null || { echo "needs kamailio (apt-get install kamailio)" >&2; exit 2; }

dir=$(mktemp -d)
chmod 755 "$dir"
pg_port=$((55000 + RANDOM % 1000))
trap 'kill $(jobs -p) 2>/dev/null || true; scripts/postgres.sh stop "$dir/pg" >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
url=$(scripts/postgres.sh start "$dir/pg" "$pg_port")
psql_q() { psql -X -qAt -d "$url" -c "$1"; }

base=$((15000 + RANDOM % 4000))
sink_port=$((46000 + RANDOM % 1000))
sink=$(start_sink "$sink_port" $((duration + 90)))
pids=()
for i in 0 1; do
  node=$([ $i = 0 ] && echo a || echo b)
  port=$((base + 10 * i))
  STORE_LINES="backend = \"postgres\"
url = \"$url\"
[cluster]
node = \"$node\"" bench_config "$port" "$((20000 + 19000 * i))-$((38999 + 19000 * i))" "" >"$dir/$node.toml"
  RUST_LOG=info ./target/release/holdfast serve --config "$dir/$node.toml" 2>"$dir/$node.log" &
  pids+=($!)
done
sleep 1
front=$((base + 30))
printf '1 sip:127.0.0.1:%d 0 0\n1 sip:127.0.0.1:%d 0 0\n' "$base" $((base + 10)) >"$dir/dispatcher.list"
mkdir -p "$dir/kam"
kamailio -f deploy/kamailio/kamailio.cfg -DD -E -n 2 -m 64 -M 8 -l "udp:127.0.0.1:$front" \
  -A "DISPATCHER_LIST=\"$dir/dispatcher.list\"" -Y "$dir/kam" -P "$dir/kam/kamailio.pid" -w "$dir/kam" \
  2>"$dir/kamailio.log" &
kam=$!
sleep 3

scenario=$PWD/sipp/caller.xml
(cd "$dir" && exec sipp "127.0.0.1:$front" -sf "$scenario" -s 100 -i 127.0.0.1 -p $((base + 40)) -mp 47000 \
  -m "$calls" -l $((rate * 10)) -r "$rate" -d 2000 -key rtp_port "$sink_port" \
  -trace_stat -stf stat.csv -fd 5 -trace_rtt -rtt_freq 100 \
  -nostdin -timeout $((duration + 60))s -timeout_error -trace_err -error_file sipp_err.log \
  >/dev/null 2>&1) &
sipp_sh=$!
sleep 10
# Every process of the cluster's parts: the nodes, Kamailio and its workers, PostgreSQL's.
ticks() { local sum=0; for p in "$@"; do [ -r "/proc/$p/stat" ] && sum=$((sum + $(cpu_ticks "$p"))); done; echo "$sum"; }
pg_pids() { pgrep -f "postgres.*$dir/pg|postgres: " -u postgres | tr '\n' ' '; }
kam_pids() { echo "$kam $(pgrep -P "$kam" | tr '\n' ' ')"; }
stats_sql="SELECT xact_commit, (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables) FROM pg_stat_database WHERE datname = 'holdfast'"
a0=$(ticks "${pids[0]}"); b0=$(ticks "${pids[1]}"); k0=$(ticks $(kam_pids)); p0=$(ticks $(pg_pids))
s0=$(psql_q "$stats_sql"); joined() { cat "$dir/a.log" "$dir/b.log" | grep -ac "caller joined queue" || true; }
c0=$(joined)
sleep "$window"
a1=$(ticks "${pids[0]}"); b1=$(ticks "${pids[1]}"); k1=$(ticks $(kam_pids)); p1=$(ticks $(pg_pids))
s1=$(psql_q "$stats_sql"); c1=$(joined)
wait "$sipp_sh" && sipp_ok=1 || sipp_ok=0
per_node="$(grep -ac "caller joined queue" "$dir/a.log" || true) $(grep -ac "caller joined queue" "$dir/b.log" || true)"

python3 - "$rate" "$calls" "$hz" "$window" "$dir" "$out/cluster-$rate.json" "$sipp_ok" \
  "$a0" "$a1" "$b0" "$b1" "$k0" "$k1" "$p0" "$p1" "$s0" "$s1" "$c0" "$c1" "$per_node" <<'PY'
import json, sys
rate, calls, hz, window = (int(x) for x in sys.argv[1:5])
d, path, sipp_ok = sys.argv[5], sys.argv[6], sys.argv[7] == "1"
a0, a1, b0, b1, k0, k1, p0, p1 = (int(x) for x in sys.argv[8:16])
s0, s1 = ([int(v) for v in x.split("|")] for x in sys.argv[16:18])
c0, c1 = int(sys.argv[18]), int(sys.argv[19])
per_node = sys.argv[20]
cpu = lambda t0, t1: round(100.0 * (t1 - t0) / hz / window, 2)
sys.path.insert(0, "scripts")
import sipp_stats
c = sipp_stats.counters(d)
rtts, pct = sipp_stats.response_times(d)
joined = max(c1 - c0, 1)
result = {
    "kind": "cluster", "rate": rate, "calls_planned": calls,
    "calls_successful": c("SuccessfulCall(C)"), "calls_failed": c("FailedCall(C)"),
    "retransmissions": c("Retransmissions(C)"), "sipp_exit_ok": sipp_ok,
    "joined_per_node_log": per_node,
    "invite_to_200_ms": {"p50": pct(50), "p99": pct(99), "max": rtts[-1] if rtts else None},
    "cpu_percent": {"node_a": cpu(a0, a1), "node_b": cpu(b0, b1), "kamailio": cpu(k0, k1), "postgresql": cpu(p0, p1)},
    "calls_in_window": c1 - c0,
    "store_transactions_per_call": round((s1[0] - s0[0]) / joined, 2),
    "store_rows_written_per_call": round((s1[1] - s0[1]) / joined, 2),
}
json.dump(result, open(path, "w"), indent=1)
r = result
print(f"cluster: rate={rate}/s calls={r['calls_successful']}/{calls} failed={r['calls_failed']} "
      f"retrans={r['retransmissions']} per-node(a b)={per_node.strip()} invite->200 p50={pct(50)}ms p99={pct(99)}ms "
      f"cpu={r['cpu_percent']} store: {r['store_transactions_per_call']} transactions/call, "
      f"{r['store_rows_written_per_call']} rows/call")
PY
