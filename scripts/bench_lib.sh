# Helpers shared by scripts/bench*.sh (sourced; expects $n, $window and $out set).

hz=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || true

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

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

# The floor program with ${1:-$n} streams, CPU over $window s into $floor_cpu.
run_floor() {
  local streams=${1:-$n}
  local sink_port=$((45000 + RANDOM % 1000))
  local sink; sink=$(start_sink "$sink_port" $((window + 20)))
  ./target/release/examples/udp_floor --streams "$streams" --dest "127.0.0.1:$sink_port" --seconds $((window + 10)) >/dev/null &
  local pid=$!
  sleep 5
  local t0; t0=$(cpu_ticks "$pid")
  sleep "$window"
  local t1; t1=$(cpu_ticks "$pid")
  wait "$pid" || true
  kill "$sink" 2>/dev/null || true
  floor_cpu=$(python3 -c "print(round(100.0 * ($t1 - $t0) / $hz / $window, 2))")
}

