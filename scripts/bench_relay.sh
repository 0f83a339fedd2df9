#!/usr/bin/env bash
# scripts/bench.sh relay [N]: N bridged calls. N agents a1..aN are configured and registered
# (scripts/register_agents.py: Digest REGISTERs from one socket, 200 in flight; SIPp cannot
# take digest credentials from an injection file), every Contact naming one SIPp UAS
# (sipp/agent.xml with -rtp_echo) that answers every INVITE and echoes the RTP it gets back
# to its sender. N SIPp callers (sipp/caller_rtp.xml) stream PCMU with rtp_stream, so each
# bridged call relays 50 packets/s in each direction. Reports holdfast's CPU over a steady
# WINDOW (30) s, CPU per bridged call, packets relayed per second (from holdfast's
# `media stats` line), and two floors measured in the same run: the floor program's CPU for
# 2N streams (the same number of sends per second, without the receiving), and the relay's
# own floor per relayed packet (examples/relay_load --mode floor and floor-uring: N calls
# relayed by one thread with connected sockets, through epoll or io_uring; the cheaper).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2000}
window=${WINDOW:-30}
out=target/bench
mkdir -p "$out"
source scripts/bench_lib.sh

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
sip_port=$((15000 + RANDOM % 5000))
agent_port=$((sip_port + 1))
rate=${RATE:-100}
ramp=$(( (n + rate - 1) / rate ))
stay=$(( (ramp + window + 25 + profile_seconds) * 1000 ))
{
  bench_config "$sip_port" 20000-39999 "" 'digest_algorithms = ["MD5"]' "wrapup = 0"
  for i in $(seq 1 "$n"); do printf '[[agent]]\nuser = "a%d"\npassword = "pw%d"\n' "$i" "$i"; done
} >"$dir/holdfast.toml"
write_tone_wav "$dir/caller_rtp.wav"

RUST_LOG=info ./target/release/holdfast serve --config "$dir/holdfast.toml" 2>"$dir/holdfast.log" &
hf=$!
sleep 1
root=$PWD
(cd "$dir" && exec sipp -sf "$root/sipp/agent.xml" -i 127.0.0.1 -p $agent_port -rtp_echo -mp 48000 \
  -m "$n" -nostdin -timeout $((ramp + window + 120))s -trace_err -error_file agent_err.log \
  >/dev/null 2>&1) &
agents_sh=$!
# Exit status 0: every agent registered (it lists the ones that did not, and fails).
python3 scripts/register_agents.py "127.0.0.1:$sip_port" "127.0.0.1:$agent_port" 1 "$n" \
  >"$dir/reg_failures.txt" && reg_ok=1 || reg_ok=0
registered=$(grep -ac "Registered {" "$dir/holdfast.log" || true)
rss0=$(rss_kb "$hf")
(cd "$dir" && exec sipp 127.0.0.1:$sip_port -sf "$root/sipp/caller_rtp.xml" -s 100 -i 127.0.0.1 -p $((sip_port + 2)) \
  -mp 50000 -m "$n" -l "$n" -r "$rate" -d "$stay" \
  -nostdin -timeout $((ramp + window + 120))s -timeout_error -trace_err -error_file caller_err.log \
  >/dev/null 2>&1) &
callers_sh=$!
sleep $((ramp + 10))
t0=$(cpu_ticks "$hf")
sleep "$window"
t1=$(cpu_ticks "$hf")
rss1=$(rss_kb "$hf")
# The last two `media stats` lines (logged every 10 s) give the rates.
stats0=$(grep -a "media stats" "$dir/holdfast.log" | tail -2 | head -1 || true)
stats1=$(grep -a "media stats" "$dir/holdfast.log" | tail -1 || true)
profile "$hf" "relay-$n"
wait "$callers_sh" && callers_ok=1 || callers_ok=0
wait "$agents_sh" && agents_ok=1 || agents_ok=0
kill -TERM "$hf" 2>/dev/null || true
wait "$hf" 2>/dev/null || true

run_floor $((2 * n))
# The relay's own floor for the same number of calls (bench_floors.sh).
cargo build --release --quiet --example relay_load
relay_floor "$n" "$window"
echo "relay floors:$relay_floor_all" >&2

python3 - "$n" "$t0" "$t1" "$hz" "$window" "$rss0" "$rss1" "$floor_cpu" "$reg_ok" "$registered" \
  "$callers_ok" "$agents_ok" "$stats0" "$stats1" "$out/relay-$n.json" "$relay_floor_us" "$relay_floor_all" <<'PY'
import json, re, sys
relay_floor_us = float(sys.argv[16] or 0)
relay_floor_all = sys.argv[17].strip()
n, t0, t1, hz, window, rss0, rss1 = (int(x) for x in sys.argv[1:8])
floor = float(sys.argv[8])
reg_ok, registered, callers_ok, agents_ok = sys.argv[9] == "1", int(sys.argv[10]), sys.argv[11] == "1", sys.argv[12] == "1"
s0, s1, path = sys.argv[13], sys.argv[14], sys.argv[15]
f0 = dict(re.findall(r"(\w+)=([0-9.]+)", s0))
f1 = dict(re.findall(r"(\w+)=([0-9.]+)", s1))
cpu = 100.0 * (t1 - t0) / hz / window
# The two `media stats` lines are 10 s apart at best; use their counters' difference.
def rate(k):
    try:
        return round((int(f1[k]) - int(f0[k])) / 10.0) if s0 != s1 else None
    except (KeyError, ValueError):
        return None
result = {
    "kind": "relay", "bridged_calls": n, "cpu_percent": round(cpu, 2),
    "cpu_percent_per_bridged_call": round(cpu / n, 4),
    "cpu_us_per_relayed_packet": None,
    "relayed_per_s": rate("relayed"), "received_per_s": rate("received"), "expected_relayed_per_s": 100 * n,
    "rss_kb_per_call": round((rss1 - rss0) / n, 2),
    "floor_cpu_percent_2n_streams": floor, "ratio_to_floor": round(cpu / floor, 3) if floor else None,
    "agents_registered": registered, "registration_ok": reg_ok, "callers_ok": callers_ok, "agents_ok": agents_ok,
    "engine": f1,
}
if result["relayed_per_s"]:
    result["cpu_us_per_relayed_packet"] = round(cpu / 100 * 1e6 / result["relayed_per_s"], 2)
result["relay_floor_us_per_packet"] = relay_floor_us or None
result["relay_floors"] = relay_floor_all
if relay_floor_us and result["cpu_us_per_relayed_packet"]:
    result["ratio_to_relay_floor"] = round(result["cpu_us_per_relayed_packet"] / relay_floor_us, 3)
json.dump(result, open(path, "w"), indent=1)
r = result
print(f"relay: calls={n} registered={registered} cpu={cpu:.1f}% per_call={r['cpu_percent_per_bridged_call']}% "
      f"relayed/s={r['relayed_per_s']} (expected {100*n}) us/relayed_pkt={r['cpu_us_per_relayed_packet']} "
      f"floor(2N streams)={floor:.1f}% ratio={r['ratio_to_floor']} relay_floor_us/pkt={relay_floor_us} ({relay_floor_all}) "
      f"ratio_to_relay_floor={r.get('ratio_to_relay_floor')} callers_ok={callers_ok} agents_ok={agents_ok} "
      f"engine: {s1.split('media stats')[-1].strip()}")
PY
