#!/usr/bin/env bash
# scripts/bench.sh keep [R]: what keeping calls for a restart costs (docs/behaviour.md §13).
# The call set-up benchmark at R calls/s (default 1000) twice, one after the other: with
# `[store] keep_calls = false`, then with the default `true`. Prints holdfast's CPU per call,
# the controller thread's cost per call and the bytes written to storage per call for both,
# and the ratios. DURATION as in bench_setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1000}
out=target/bench
STORE_LINES="keep_calls = false" LABEL=nokeep scripts/bench_setup.sh "$rate"
LABEL=keep scripts/bench_setup.sh "$rate"
python3 - "$out/setup-$rate-udp-nokeep.json" "$out/setup-$rate-udp-keep.json" "$out/keep-$rate.json" <<'PY'
import json, sys
off, on = (json.load(open(p)) for p in sys.argv[1:3])
def ratio(key):
    return round(on[key] / off[key], 3) if off[key] else None
result = {
    "kind": "keep", "rate": on["rate"],
    "failed": {"without": off["calls_failed"], "with": on["calls_failed"]},
    "holdfast_cpu_us_per_call": {"without": off["holdfast_cpu_us_per_call"], "with": on["holdfast_cpu_us_per_call"], "ratio": ratio("holdfast_cpu_us_per_call")},
    "signalling_us_per_call": {"without": off["signalling_us_per_call"], "with": on["signalling_us_per_call"], "ratio": ratio("signalling_us_per_call")},
    "store_bytes_per_call": {"without": off["store_bytes_per_call"], "with": on["store_bytes_per_call"]},
    "invite_to_200_p99_ms": {"without": off["invite_to_200_ms"]["p99"], "with": on["invite_to_200_ms"]["p99"]},
    "kept_rows_per_call": 2,
}
json.dump(result, open(sys.argv[3], "w"), indent=1)
print("keep:", json.dumps(result))
PY
