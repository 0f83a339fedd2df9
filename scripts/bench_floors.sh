# The floors' shared pieces for scripts/bench*.sh (sourced; builds nothing).

# Succeeds when $1 is below $2 or $2 is empty (nothing measured yet): keeps the cheaper floor.
cheaper() { [ -z "$2" ] || python3 -c "import sys; sys.exit(0 if $1 < $2 else 1)"; }

# The relay's own floor for $1 calls over $2 s: examples/relay_load --mode floor (connected
# sockets, one thread, epoll, a recv and a send a packet) and --mode floor-uring (one
# io_uring: multishot receives, batched sends). µs of CPU per relayed packet of the cheaper
# go to $relay_floor_us, each mode's figure to $relay_floor_all; each run's output to stderr.
relay_floor() {
  relay_floor_us="" relay_floor_all=""
  local mode out us
  for mode in floor floor-uring; do
    out=$(target/release/examples/relay_load --pairs "$1" --seconds "$2" --mode "$mode")
    echo "$out" >&2
    us=$(echo "$out" | sed -n 's/.*CPU per packet out \([0-9.]*\) µs.*/\1/p')
    relay_floor_all="$relay_floor_all $mode=${us}µs"
    if cheaper "$us" "$relay_floor_us"; then relay_floor_us=$us; fi
  done
}
