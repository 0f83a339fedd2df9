#!/usr/bin/env bash
# scripts/bench.sh record [N]: the cost of recording and of supervisor monitoring, in one run
# of three back-to-back measurements with examples/relay_load (N bridged pairs driven by the
# engine directly, both phones of every pair talking 50 packets/s, SECONDS (20) s each):
#   1. N calls relayed, nothing else;
#   2. the same N calls, every one recorded (the shards' CPU, and the writer thread's apart);
#   3. the same N calls, MONITORED (50) of them with a supervisor barging in (all mixing on).
# Prints the extra CPU per recorded call and per monitored call, disk bytes per recorded
# call-minute, and the relay probe's forwarding latency in each run (no growth expected).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-500}
seconds=${SECONDS_RUN:-20}
monitored=${MONITORED:-50}
shards=${SHARDS:-2}
out=target/bench
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet --example relay_load
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() {
  target/release/examples/relay_load --pairs "$n" --seconds "$seconds" --shards "$shards" "$@" \
    | tee -a "$dir/runs.txt" | sed -n 's/^json //p'
}
plain=$(run)
recorded=$(run --record "$dir/rec")
disk=$(du -sb "$dir/rec" | cut -f1)
audio_frames=$(python3 - "$dir/rec" <<'PY'
import os, struct, sys
total = 0
for name in os.listdir(sys.argv[1]):
    with open(os.path.join(sys.argv[1], name), "rb") as f:
        head = f.read(44)
    if len(head) == 44 and head[:4] == b"RIFF":
        total += struct.unpack("<I", head[40:44])[0] // 4
print(total)
PY
)
monitoring=$(run --monitor "$monitored")
cat "$dir/runs.txt" >&2

python3 - "$plain" "$recorded" "$monitoring" "$disk" "$audio_frames" "$out/record-$n.json" <<'PY'
import json, sys
plain, rec, mon = (json.loads(a) for a in sys.argv[1:4])
disk, frames, path = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
pct = lambda r, key="engine_cpu_s": 100.0 * r[key] / r["wall_s"]
n, m = plain["pairs"], mon["monitored"]
minutes = frames / 8000 / 60
result = {
    "kind": "record", "bridged_calls": n,
    "relay_cpu_percent": round(pct(plain), 2),
    "recorded_shards_cpu_percent": round(pct(rec), 2),
    "recorded_writer_cpu_percent": round(pct(rec, "writer_cpu_s"), 2),
    "recording_cost_percent_per_call": round((pct(rec) + pct(rec, "writer_cpu_s") - pct(plain)) / n, 5),
    "recorded_to_plain_ratio": round((pct(rec) + pct(rec, "writer_cpu_s")) / pct(plain), 3),
    "disk_bytes_per_call_minute": round(disk / minutes) if minutes else None,
    "monitored_calls": m,
    "monitored_cpu_percent": round(pct(mon), 2),
    "mixing_cost_percent_per_monitored_call": round((pct(mon) - pct(plain)) / m, 4) if m else None,
    "probe_p99_us": {"plain": plain.get("probe_p99_us"), "recorded": rec.get("probe_p99_us"),
                     "monitored": mon.get("probe_p99_us")},
}
json.dump(result, open(path, "w"), indent=1)
r = result
print(f"record: calls={n} relay={r['relay_cpu_percent']}% recorded={r['recorded_shards_cpu_percent']}% "
      f"+ writer {r['recorded_writer_cpu_percent']}% (ratio {r['recorded_to_plain_ratio']}, "
      f"{r['recording_cost_percent_per_call']}% of a core per recorded call) "
      f"disk/call-minute={r['disk_bytes_per_call_minute']} B | monitored={m}: {r['monitored_cpu_percent']}% "
      f"({r['mixing_cost_percent_per_monitored_call']}% per monitored call) | probe p99 us {r['probe_p99_us']}")
PY
