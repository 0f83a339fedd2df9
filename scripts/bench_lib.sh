# Helpers shared by scripts/bench*.sh (sourced; expects $n, $window and $out set).

source scripts/bench_floors.sh
hz=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || true

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU ticks of holdfast's threads, as "name=ticks" words: "signalling" is the main thread
# (the controller, SIP I/O and the admin API run on it), "media-N" the shards, "other" the
# rest (store writer...).
thread_ticks() {
  python3 - "$1" <<'PY'
import glob, os, sys
pid = sys.argv[1]
out = {}
for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
    try:
        text = open(stat).read()
    except OSError:
        continue
    tid = stat.split("/")[4]
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    key = "signalling" if tid == pid else (name if name.startswith("media-") else "other")
    out[key] = out.get(key, 0) + ticks
print(" ".join(f"{k}={v}" for k, v in sorted(out.items())))
PY
}
# The share of one core each thread group used between two thread_ticks snapshots, as JSON.
thread_cpu_json() {
  python3 - "$1" "$2" "$hz" "$3" <<'PY'
import json, sys
a = dict(w.split("=") for w in sys.argv[1].split())
b = dict(w.split("=") for w in sys.argv[2].split())
hz, window = int(sys.argv[3]), float(sys.argv[4])
print(json.dumps({k: round(100.0 * (int(v) - int(a.get(k, 0))) / hz / window, 2) for k, v in sorted(b.items())}))
PY
}

# A UDP socket that receives (so no ICMP port-unreachable) and never reads: packets are
# queued and dropped at the receiver, the same for holdfast and for the floor program.
# Its output must not go to the caller's $(...) pipe, or the caller would wait for it to end.
start_sink() {
  python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', int(sys.argv[1])))
time.sleep(int(sys.argv[2]))" "$1" "$2" >/dev/null 2>&1 &
  echo $!
}

cargo build --release --quiet --bin holdfast --example udp_floor

# The benchmark's holdfast.toml on stdout: SIP on 127.0.0.1:$1, RTP ports $2, admin API on
# $3 ("" = off), data under $dir, a trunk allowed from loopback, and one queue "support" that
# every number routes to. $4 and $5 are extra lines for [sip] and for the queue. SHARDS=k
# sets [media] shards (default: one per core), PIN=1 pins them; STORE_LINES are added to
# [store] (and may open [cluster] after them).
bench_config() {
  cat <<TOML
[sip]
listen = "127.0.0.1:$1"
rtp_ports = "$2"
max_calls = 20000
${4:-}
[admin]
listen = "$3"
[store]
data_dir = "$dir/data"
${STORE_LINES:-}
[media]
${SHARDS:+shards = $SHARDS}
${PIN:+pin_shards = true}
[[trunk]]
name = "bench"
allow = ["127.0.0.0/8"]
address = "127.0.0.1:5070"
[[queue]]
name = "support"
max_len = 100000
${5:-}
[[route]]
number = "*"
queue = "support"
priority = "normal"
TOML
}

# PROFILE=1: after the CPU window (so sampling does not distort it), a cpu-clock profile of
# the process for $profile_seconds, summarised by symbol (kernel and user) into
# $out/<label>.perf.txt. Calls stay $profile_seconds longer so the load is still there.
profile_seconds=0
if [ "${PROFILE:-0}" = 1 ]; then
  command -v perf >/dev/null || { echo "PROFILE=1 needs perf (apt-get install linux-perf)" >&2; exit 2; }
  profile_seconds=8
fi
profile() {
  [ "$profile_seconds" -gt 0 ] || return 0
  local data="$out/$2.perf.data"
  perf record -q -g -e cpu-clock -p "$1" -o "$data" -- sleep "$profile_seconds" >/dev/null 2>&1 || true
  {
    echo "# perf record -g -e cpu-clock -p <$2> for $profile_seconds s; share of samples by where they ran"
    perf report -i "$data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
    echo
    perf report -i "$data" --stdio --no-children --sort sym -g none --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$'
  } >"$out/$2.perf.txt"
  echo "profile: $out/$2.perf.txt (call graphs: perf report -i $data)"
}

# Ten seconds of a 440 Hz tone as G.711 u-law in a WAV container (format 7), looped by
# SIPp's rtp_stream in the talking caller scenario (sipp/caller_rtp.xml).
write_tone_wav() {
  python3 - "$1" <<'PY'
import math, struct, sys
def ulaw(x):
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    exp = max(0, x.bit_length() - 8)
    return ~(sign | (min(exp, 7) << 4) | ((x >> (min(exp, 7) + 3)) & 0x0f)) & 0xff
data = bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(80000))
fmt = struct.pack("<HHIIHHHH", 7, 1, 8000, 8000, 1, 8, 2, 0)
body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
open(sys.argv[1], "wb").write(b"RIFF" + struct.pack("<I", len(body)) + body)
PY
}

# The floor: the cheapest sender of ${1:-$n} streams' packets (examples/udp_floor). Each of
# FLOOR_MODES ("uring burst") runs for $window s and the cheapest CPU goes to $floor_cpu
# (its mode to $floor_mode, every mode's figure to $floor_all); FLOOR_MODES=slots gives the
# old floor, the engine's own shape.
run_floor() {
  local streams=${1:-$n}
  floor_cpu="" floor_mode="" floor_all=""
  local mode
  for mode in ${FLOOR_MODES:-uring burst}; do
    local sink_port=$((45000 + RANDOM % 1000))
    local sink; sink=$(start_sink "$sink_port" $((window + 20 + profile_seconds)))
    ./target/release/examples/udp_floor --streams "$streams" --dest "127.0.0.1:$sink_port" \
      --mode "$mode" --seconds $((window + 10 + profile_seconds)) >/dev/null &
    local pid=$!
    sleep 5
    local t0; t0=$(cpu_ticks "$pid")
    sleep "$window"
    local t1; t1=$(cpu_ticks "$pid")
    profile "$pid" "floor-$mode-$streams"
    wait "$pid" || true
    kill "$sink" 2>/dev/null || true
    local cpu; cpu=$(python3 -c "print(round(100.0 * ($t1 - $t0) / $hz / $window, 2))")
    floor_all="$floor_all $mode=$cpu%"
    if cheaper "$cpu" "$floor_cpu"; then
      floor_cpu=$cpu floor_mode=$mode
    fi
  done
}

