#!/usr/bin/env bash
# Benchmarks over loopback (bounded in count and time, nothing leaves 127.0.0.1).
#
#   scripts/bench.sh hold  [N]   N held callers (SIPp UAC): holdfast CPU, per-caller cost,
#                                RSS per caller, RTP rate and send lateness, and the same
#                                packet load from the minimal floor program for the ratio
#                                (CALLERS_RTP=1: the callers also stream PCMU to holdfast,
#                                sipp/caller_rtp.xml, result in hold-rtp-N.json;
#                                WALLBOARD=1: with a wallboard client on the admin API's
#                                event stream, whose bytes per second are reported)
#   scripts/bench.sh floor [N]   only the floor program
#   scripts/bench.sh setup [R]   SIPp at R calls/s into the queue with 2 s stays for DURATION
#                                (60) s: failed calls, retransmissions, INVITE->200 p50/p99,
#                                holdfast CPU, and the floor for the ~2R held streams
#   scripts/bench.sh transports [R]
#                                setup at R calls/s over UDP, then TCP, then TLS, one after
#                                the other in one run (TRANSPORT in bench_setup.sh)
#   scripts/bench.sh relay [N]   N bridged calls: N SIPp callers streaming PCMU, N agents
#                                registered to one SIPp UAS echoing RTP: CPU per bridged
#                                call, packets relayed per second, and the floor for 2N
#                                streams
#   scripts/bench.sh record [N]  N (500) bridged calls relayed, then all recorded, then with
#                                MONITORED (50) supervisors barging in, in one run: extra CPU
#                                per recorded and per monitored call, disk bytes per call-minute
#   scripts/bench.sh scale       CPU per held caller (500 2000 5000 10000) and per bridged call
#                                (500 2000) beside the floor, engine alone, as a table and a
#                                plot (docs/bench-scale.svg, scripts/plot_scale.py)
#   scripts/bench.sh cluster [R] two nodes on one PostgreSQL behind Kamailio, R calls/s
#                                through Kamailio: failed calls, INVITE->200, each part's
#                                CPU, store transactions and rows per call
#   scripts/bench.sh handoff [N] two nodes, N (60) held callers, one agent: BYE -> next INVITE, other node vs same
#   scripts/bench.sh keep [R]    setup at R (1000) calls/s without and with [store] keep_calls:
#                                CPU and bytes written per call, the ratio
#   scripts/bench.sh upgrade [N] N (2000) held callers across a graceful upgrade (MODE=crash:
#                                kill -9 and restart): longest silence per caller, sequence
#                                continuity
#   SHARDS=k                     [media] shards for holdfast (default: one per core); the
#                                summary splits holdfast's CPU by thread (signalling = the
#                                controller's thread, media-N = the shards)
#
# Each prints one summary line and writes target/bench/<kind>-<N>.json.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-hold}
n=${2:-5000}
window=${WINDOW:-30}
out=target/bench
mkdir -p "$out"
source scripts/bench_lib.sh

if [ "$kind" = floor ]; then
  FLOOR_MODES=${FLOOR_MODES:-uring burst unconnected slots} run_floor
  echo "floor: streams=$n cpu=${floor_cpu}% of one core (cheapest: $floor_mode; each:$floor_all)"
  printf '{"kind":"floor","streams":%d,"cpu_percent":%s,"mode":"%s","modes":"%s"}\n' "$n" "$floor_cpu" "$floor_mode" "$floor_all" >"$out/floor-$n.json"
  exit 0
fi

case "$kind" in
  hold) ;;
  setup) exec scripts/bench_setup.sh "${2:-200}" ;;
  transports)
    for t in udp tcp tls; do TRANSPORT=$t scripts/bench_setup.sh "${2:-200}"; done
    exit 0
    ;;
  relay) exec scripts/bench_relay.sh "${2:-2000}" ;;
  record) exec scripts/bench_record.sh "${2:-500}" ;;
  scale) exec scripts/bench_scale.sh ;;
  cluster) exec scripts/bench_cluster.sh "${2:-200}" ;;
  handoff) exec scripts/bench_handoff.sh "${2:-${CALLS:-60}}" ;;
  keep) exec scripts/bench_keep.sh "${2:-1000}" ;;
  upgrade) exec scripts/bench_upgrade.sh "${2:-2000}" ;;
  *) echo "usage: scripts/bench.sh hold|floor|setup|transports|relay|record|scale|cluster|handoff|keep|upgrade [N]" >&2; exit 2 ;;
esac

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
sip_port=5760
admin_listen=""
[ "${WALLBOARD:-0}" = 1 ] && admin_listen="127.0.0.1:$((18000 + RANDOM % 1000))"
sink_port=$((46000 + RANDOM % 1000))
rate=250
ramp=$(( (n + rate - 1) / rate ))
stay=$(( (ramp + window + 15 + profile_seconds) * 1000 ))
bench_config "$sip_port" 20000-59999 "$admin_listen" >"$dir/holdfast.toml"
sink=$(start_sink "$sink_port" $((ramp + window + 60 + profile_seconds)))
label=hold
# Callers that send no RTP point their SDP at the sink; talking callers (SIPp's rtp_stream)
# receive the music on their own RTP ports and stream a tone to holdfast.
scenario=$PWD/sipp/caller.xml
media_args=(-key rtp_port "$sink_port")
if [ "${CALLERS_RTP:-0}" = 1 ]; then
  label=hold-rtp
  scenario=$PWD/sipp/caller_rtp.xml
  media_args=()
  write_tone_wav "$dir/caller_rtp.wav"
fi
RUST_LOG=info ./target/release/holdfast serve --config "$dir/holdfast.toml" 2>"$dir/holdfast.log" &
hf=$!
sleep 1
rss0=$(rss_kb "$hf")
(cd "$dir" && exec sipp 127.0.0.1:$sip_port -sf "$scenario" -s 100 -i 127.0.0.1 -p 5761 -mp 47000 \
  -m "$n" -l "$n" -r "$rate" -d "$stay" "${media_args[@]}" \
  -nostdin -timeout $((ramp + window + 120))s -timeout_error -trace_err -error_file "$dir/sipp_err.log" \
  >/dev/null 2>&1) &
sipp_pid=$!
sleep $((ramp + 5))
sse_bytes=0
if [ -n "$admin_listen" ]; then
  # One wallboard: the server-sent snapshot stream the page itself consumes.
  curl -sN --max-time $((window + profile_seconds)) "http://$admin_listen/api/events" >"$dir/sse.out" 2>/dev/null &
fi
t0=$(cpu_ticks "$hf"); th0=$(thread_ticks "$hf")
sleep "$window"
t1=$(cpu_ticks "$hf"); th1=$(thread_ticks "$hf")
threads=$(thread_cpu_json "$th0" "$th1" "$window")
[ -n "$admin_listen" ] && sse_bytes=$(stat -c %s "$dir/sse.out")
rss1=$(rss_kb "$hf")
# The last two `media stats` lines (logged every 10 s) give the packet rates.
stats0=$(grep -a "media stats" "$dir/holdfast.log" | tail -2 | head -1 || true)
stats=$(grep -a "media stats" "$dir/holdfast.log" | tail -1 || true)
profile "$hf" "$label-$n"
wait "$sipp_pid" && sipp_ok=1 || sipp_ok=0
kill -TERM "$hf" 2>/dev/null || true
wait "$hf" 2>/dev/null || true
kill "$sink" 2>/dev/null || true

run_floor

python3 - "$n" "$t0" "$t1" "$hz" "$window" "$rss0" "$rss1" "$floor_cpu" "$sipp_ok" "$stats" "$out/$label-$n.json" "$sse_bytes" "$label" "$stats0" "$threads" "$floor_mode" "$floor_all" <<'PY'
import json, re, sys
floor_mode, floor_all = sys.argv[16], sys.argv[17].strip()
n, t0, t1, hz, window, rss0, rss1 = (int(x) for x in sys.argv[1:8])
floor, sipp_ok, stats, path = float(sys.argv[8]), sys.argv[9] == "1", sys.argv[10], sys.argv[11]
sse_bytes, label, stats0 = int(sys.argv[12]), sys.argv[13], sys.argv[14]
threads = json.loads(sys.argv[15])
media = {k: v for k, v in threads.items() if k.startswith("media-")}
cpu = 100.0 * (t1 - t0) / hz / window
fields = dict(re.findall(r"(\w+)=([0-9.]+)", stats))
fields0 = dict(re.findall(r"(\w+)=([0-9.]+)", stats0))
def rate(key):
    # The two lines are 10 s apart.
    return round((int(fields.get(key, 0)) - int(fields0.get(key, 0))) / 10) if fields0 else None
result = {
    "kind": label, "callers": n, "cpu_percent": round(cpu, 2),
    "cpu_us_per_caller_per_s": round(cpu / 100 * 1e6 / n, 2),
    "rss_kb_per_caller": round((rss1 - rss0) / n, 2),
    "floor_cpu_percent": floor, "ratio_to_floor": round(cpu / floor, 3) if floor else None,
    "floor_mode": floor_mode, "floor_modes": floor_all,
    "media_ratio_to_floor": round(sum(media.values()) / floor, 3) if floor and media else None,
    "all_calls_succeeded": sipp_ok,
    "rtp_sent_per_s": rate("sent"), "rtp_expected_per_s": n * 50,
    "rtp_received_per_s": rate("received"),
    "engine": fields,
    "threads_cpu_percent": threads, "shards": len(media),
    "media_cpu_us_per_caller_per_s": round(sum(media.values()) / 100 * 1e6 / n, 2),
}
if sse_bytes:
    result["wallboard_bytes_per_s"] = round(sse_bytes / window)
json.dump(result, open(path, "w"), indent=1)
print(f"{label}: callers={n} cpu={cpu:.1f}% floor={floor:.1f}% ({floor_mode}; {floor_all}) ratio={result['ratio_to_floor']} "
      f"media_ratio={result['media_ratio_to_floor']} "
      f"us/caller/s={result['cpu_us_per_caller_per_s']} shards={len(media)} threads={threads} rss/caller={result['rss_kb_per_caller']}KB "
      f"calls_ok={sipp_ok} sent/s={result['rtp_sent_per_s']} (of {n * 50}) "
      f"received/s={result['rtp_received_per_s']} wallboard_B/s={result.get('wallboard_bytes_per_s', '-')} engine: {stats.split('media stats')[-1].strip()}")
PY
