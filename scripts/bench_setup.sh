#!/usr/bin/env bash
# scripts/bench.sh setup [R]: SIPp places R calls/s for DURATION (60) s into one queue;
# every caller stays 2 s (hearing hold music, sending no RTP) and hangs up. Reports failed
# calls, retransmissions and INVITE->200 p50/p99 from SIPp's own traces (-trace_stat,
# -trace_rtt on the rtd="true" 200), holdfast's and SIPp's CPU over the steady window, and
# the floor program's CPU for the 2R streams that are held at any moment (the media part
# of holdfast's cost), measured in the same run.
#
# TRANSPORT=udp (default) | tcp | tls: how the SIPp trunk reaches holdfast. tcp: one
# connection carries every call (-t t1), as a trunk's does; tls: the same connection through
# socat, which holds the TLS session to holdfast's listener (Debian's SIPp has no TLS), so
# holdfast's figure includes decrypting and encrypting every message.
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${1:-200}
duration=${DURATION:-60}
n=$((rate * 2))
window=$((duration - 10))
if [ "$window" -lt 10 ]; then
  echo "DURATION=$duration: at least 20 s (the first 10 s are ramp, the rest is measured)" >&2
  exit 2
fi
out=target/bench
mkdir -p "$out"
source scripts/bench_lib.sh
calls=$((rate * duration))

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
sip_port=$((15000 + RANDOM % 5000))
sink_port=$((46000 + RANDOM % 1000))
transport=${TRANSPORT:-udp}
target=127.0.0.1:$sip_port
transport_args=()
tls_lines=""
case "$transport" in
  udp) ;;
  tcp) transport_args=(-t t1 -max_socket 1000) ;;
  tls)
    command -v socat >/dev/null || { echo "TRANSPORT=tls needs socat (apt-get install socat)" >&2; exit 2; }
    tls_lines="listen_tls = \"127.0.0.1:$((sip_port + 2))\"
tls_cert = \"$dir/tls.crt\"
tls_key = \"$dir/tls.key\""
    target=127.0.0.1:$((sip_port + 3))
    transport_args=(-t t1 -max_socket 1000)
    ;;
  *) echo "TRANSPORT=$transport: udp, tcp or tls" >&2; exit 2 ;;
esac
bench_config "$sip_port" 20000-59999 "" "$tls_lines" >"$dir/holdfast.toml"
sink=$(start_sink "$sink_port" $((duration + 90)))
RUST_LOG=info ./target/release/holdfast serve --config "$dir/holdfast.toml" 2>"$dir/holdfast.log" &
hf=$!
sleep 1
if [ "$transport" = tls ]; then
  socat TCP-LISTEN:$((sip_port + 3)),bind=127.0.0.1,reuseaddr \
    OPENSSL:127.0.0.1:$((sip_port + 2)),verify=0 2>"$dir/socat.log" &
  sleep 0.3
fi
scenario=$PWD/sipp/caller.xml
(cd "$dir" && exec sipp "$target" "${transport_args[@]}" -sf "$scenario" -s 100 -i 127.0.0.1 -p $((sip_port + 1)) -mp 47000 \
  -m "$calls" -l $((rate * 10)) -r "$rate" -d 2000 -key rtp_port "$sink_port" \
  -trace_stat -stf stat.csv -fd 5 -trace_rtt -rtt_freq 100 \
  -nostdin -timeout $((duration + 60))s -timeout_error -trace_err -error_file sipp_err.log \
  >/dev/null 2>&1) &
sipp_sh=$!
sleep 0.5
sipp_pid=$(pgrep -n -P "$sipp_sh" sipp || pgrep -n -f "sipp $target" || echo "$sipp_sh")
start=$(date +%s.%N)
sleep 5
written() { awk '/^write_bytes/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
t0=$(cpu_ticks "$hf"); s0=$(cpu_ticks "$sipp_pid" 2>/dev/null || echo 0); th0=$(thread_ticks "$hf")
w0=$(written "$hf")
sleep "$window"
t1=$(cpu_ticks "$hf"); s1=$(cpu_ticks "$sipp_pid" 2>/dev/null || echo 0); th1=$(thread_ticks "$hf")
w1=$(written "$hf")
threads=$(thread_cpu_json "$th0" "$th1" "$window")
wait "$sipp_sh" && sipp_ok=1 || sipp_ok=0
elapsed=$(python3 -c "import time; print(round(time.time() - $start + 0.5, 1))")
kill -TERM "$hf" 2>/dev/null || true
wait "$hf" 2>/dev/null || true
kill "$sink" 2>/dev/null || true

run_floor "$n"

python3 - "$rate" "$duration" "$calls" "$t0" "$t1" "$s0" "$s1" "$hz" "$window" "$floor_cpu" \
  "$sipp_ok" "$elapsed" "$dir" "$out/setup-$rate-$transport${LABEL:+-$LABEL}.json" "$transport" "$threads" \
  "$w0" "$w1" <<'PY'
import json, sys
rate, duration, calls, t0, t1, s0, s1, hz, window = (int(x) for x in sys.argv[1:10])
floor, sipp_ok, elapsed, d, path = float(sys.argv[10]), sys.argv[11] == "1", float(sys.argv[12]), sys.argv[13], sys.argv[14]
transport = sys.argv[15]
threads = json.loads(sys.argv[16])
bytes_written = int(sys.argv[18]) - int(sys.argv[17])
signalling = threads.get("signalling", 0.0)
cpu = 100.0 * (t1 - t0) / hz / window
sipp_cpu = 100.0 * (s1 - s0) / hz / window
sys.path.insert(0, "scripts")
import sipp_stats
c = sipp_stats.counters(d)
rtts, pct = sipp_stats.response_times(d)
result = {
    "kind": "setup", "transport": transport, "rate": rate, "duration_s": duration, "calls_planned": calls,
    "calls_successful": c("SuccessfulCall(C)"), "calls_failed": c("FailedCall(C)"),
    "retransmissions": c("Retransmissions(C)"),
    "invite_to_200_ms": {"p50": pct(50), "p99": pct(99), "max": rtts[-1] if rtts else None, "samples": len(rtts)},
    "holdfast_cpu_percent": round(cpu, 2), "sipp_cpu_percent": round(sipp_cpu, 2),
    "floor_cpu_percent_for_held_streams": floor, "held_streams": 2 * rate,
    "holdfast_minus_floor_percent": round(cpu - floor, 2),
    "ratio_to_floor": round(cpu / floor, 3) if floor else None,
    "sipp_elapsed_s": elapsed, "sipp_exit_ok": sipp_ok,
    "threads_cpu_percent": threads,
    # The controller's thread at this rate, per call, and the rate at which it would be
    # busy all the time if its cost per call stayed the same (a projection).
    "signalling_us_per_call": round(signalling / 100 * 1e6 / rate, 1),
    "signalling_saturates_at_calls_per_s": round(rate * 100 / signalling) if signalling else None,
    # Bytes the process caused to be written to storage (/proc/PID/io write_bytes: the
    # store's database and WAL) per call placed in the window.
    "store_bytes_per_call": round(bytes_written / (rate * window)),
    "holdfast_cpu_us_per_call": round(cpu / 100 * 1e6 / rate, 1),
}
json.dump(result, open(path, "w"), indent=1)
r = result
print(f"setup: transport={transport} rate={rate}/s calls={r['calls_successful']}/{calls} failed={r['calls_failed']} "
      f"retrans={r['retransmissions']} invite->200 p50={pct(50)}ms p99={pct(99)}ms "
      f"holdfast_cpu={cpu:.1f}% floor({2*rate} streams)={floor:.1f}% minus_floor={cpu-floor:.1f}% "
      f"sipp_cpu={sipp_cpu:.1f}% sipp_elapsed={elapsed}s threads={threads} "
      f"signalling_us/call={r['signalling_us_per_call']} saturates_at~{r['signalling_saturates_at_calls_per_s']}/s "
      f"store_bytes/call={r['store_bytes_per_call']}")
PY
