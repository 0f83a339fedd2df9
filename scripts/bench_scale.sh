#!/usr/bin/env bash
# scripts/bench.sh scale: what a held caller and a bridged call cost as their number grows,
# beside the floor, each pair of figures from back-to-back runs of the same length (SECONDS
# (10) s each; SHARDS (2) media shards):
#   held:    examples/engine_load (the media engine alone playing music to N callers) and
#            examples/udp_floor (uring and burst, the cheaper counted) for HELD (500 2000
#            5000 10000) streams;
#   bridged: examples/relay_load --mode relay, and --mode floor and floor-uring (the cheaper
#            counted) for BRIDGED (500 2000) calls.
# Writes target/bench/scale.csv (kind, n, holdfast µs/packet, floor µs/packet, ratio,
# lateness p99) and the plot docs/bench-scale.svg (scripts/plot_scale.py).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${SECONDS_RUN:-10}
shards=${SHARDS:-2}
out=target/bench
mkdir -p "$out"
source scripts/bench_floors.sh
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet --example engine_load --example udp_floor --example relay_load
sink_port=$((44000 + RANDOM % 1000))
python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', $sink_port))
time.sleep(3600)" &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

csv="$out/scale.csv"
echo "kind,n,holdfast_us_per_packet,floor_us_per_packet,ratio,lateness_p99_us" >"$csv"
for n in ${HELD:-500 2000 5000 10000}; do
  engine=$(target/release/examples/engine_load --streams "$n" --dest "127.0.0.1:$sink_port" \
    --seconds "$seconds" --shards "$shards")
  echo "$engine" >&2
  floor=""
  for mode in uring burst; do
    line=$(target/release/examples/udp_floor --streams "$n" --dest "127.0.0.1:$sink_port" \
      --seconds "$seconds" --mode "$mode")
    echo "$line" >&2
    us=$(echo "$line" | field cpu_per_packet_us)
    if cheaper "$us" "$floor"; then floor=$us; fi
  done
  us=$(echo "$engine" | field cpu_per_packet_us)
  p99=$(echo "$engine" | field p99_us)
  echo "held,$n,$us,$floor,$(python3 -c "print(round($us / $floor, 3))"),$p99" >>"$csv"
done
for n in ${BRIDGED:-500 2000}; do
  relay=$(target/release/examples/relay_load --pairs "$n" --seconds "$seconds" --shards "$shards" --mode relay)
  echo "$relay" >&2
  us=$(echo "$relay" | sed -n 's/.*CPU per packet out \([0-9.]*\) µs.*/\1/p')
  relay_floor "$n" "$seconds"
  p99=$(echo "$relay" | sed -n 's/.*probe latency to kernel rx.*p99 \([0-9]*\).*/\1/p')
  echo "bridged,$n,$us,$relay_floor_us,$(python3 -c "print(round($us / $relay_floor_us, 3))"),$p99" >>"$csv"
done
column -s, -t "$csv"
python3 scripts/plot_scale.py "$csv" docs/bench-scale.svg
echo "plot: docs/bench-scale.svg"
