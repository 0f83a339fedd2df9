#!/usr/bin/env bash
# scripts/bench.sh upgrade [N]: N (2000) held callers across a graceful upgrade
# (docs/behaviour.md §13). SIPp holds N calls on one holdfast (release build), their RTP
# going to examples/rtp_gaps, which reads kernel receive timestamps; a second holdfast is
# started on the same configuration and takes over. Reports the longest silence per caller
# (p50, p99, max), sequence steps other than +1 and numbers sent twice, SIPp's failed calls.
# MODE=crash: `kill -9` the first process and start the second at once instead (the gap then
# includes the new process's start-up: music, clips, store).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2000}
mode=${MODE:-upgrade}
rate=${RATE:-200}
out=target/bench
mkdir -p "$out"
source scripts/bench_lib.sh
cargo build --release --quiet --example rtp_gaps

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
sip_port=$((15000 + RANDOM % 5000))
sink_port=$((46000 + RANDOM % 1000))
ramp=$((n / rate + 5))
hold=$((ramp + 20))
bench_config "$sip_port" 20000-59999 "" >"$dir/holdfast.toml"
./target/release/examples/rtp_gaps --port "$sink_port" --seconds $((hold + 5)) --json "$dir/gaps.json" >/dev/null &
gaps=$!
RUST_LOG=info ./target/release/holdfast serve --config "$dir/holdfast.toml" 2>"$dir/first.log" &
first=$!
sleep 1
scenario=$PWD/sipp/caller.xml
(cd "$dir" && exec sipp "127.0.0.1:$sip_port" -sf "$scenario" -s 100 -i 127.0.0.1 -p $((sip_port + 1)) -mp 47000 \
  -m "$n" -l "$n" -r "$rate" -d $((hold * 1000)) -key rtp_port "$sink_port" -aa \
  -nostdin -timeout $((hold + 60))s -timeout_error -trace_stat -stf stat.csv \
  >/dev/null 2>&1) &
sipp=$!
sleep "$ramp"
started=$(date +%s.%N)
case "$mode" in
  upgrade) ;;
  crash) kill -9 "$first" ;;
  *) echo "MODE=$mode: upgrade or crash" >&2; exit 2 ;;
esac
RUST_LOG=info ./target/release/holdfast serve --config "$dir/holdfast.toml" 2>"$dir/second.log" &
second=$!
for _ in $(seq 100); do
  grep -q "held calls restored" "$dir/second.log" 2>/dev/null && break
  sleep 0.1
done
restored=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/second.log" | grep -o 'held calls restored restored=[0-9]*' | grep -o '[0-9]*$' || echo 0)
wait "$first" 2>/dev/null && first_ok=1 || first_ok=0
wait "$sipp" && sipp_ok=1 || sipp_ok=0
wait "$gaps" || true
kill -TERM "$second" 2>/dev/null || true
wait "$second" 2>/dev/null || true

python3 - "$n" "$mode" "$restored" "$first_ok" "$sipp_ok" "$dir" "$out/upgrade-$mode-$n.json" <<'PY'
import json, sys
n, mode, restored = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
first_ok, sipp_ok, d, path = sys.argv[4] == "1", sys.argv[5] == "1", sys.argv[6], sys.argv[7]
gaps = json.load(open(f"{d}/gaps.json"))
sys.path.insert(0, "scripts")
import sipp_stats
c = sipp_stats.counters(d)
result = {"kind": "upgrade", "mode": mode, "callers": n, "restored": restored,
          "first_process_exit_ok": first_ok if mode == "upgrade" else None,
          "calls_successful": c("SuccessfulCall(C)"), "calls_failed": c("FailedCall(C)"),
          "sipp_exit_ok": sipp_ok, **gaps}
json.dump(result, open(path, "w"), indent=1)
print("upgrade:", json.dumps(result))
PY
