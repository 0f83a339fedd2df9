#!/usr/bin/env python3
"""The wait-estimate grid of README "How the wait estimate is made": `holdfast simulate` over
handle times {exponential, lognormal} x agents {1, 3, 10} x load {0.6, 0.8, 0.9} x seeds,
48 h each with 240 s mean handle time. Prints one line per scenario, then the mean absolute
error over the grid as a share of the seed formula's and the worst share of callers who
waited longer than their spoken phrase (scenarios with at least 50 compared callers).

    scripts/estimate_grid.py [HOLDFAST_BINARY] [HOURS] [SEEDS]
    scripts/estimate_grid.py target/release/holdfast 48 1,2
"""
import itertools
import json
import subprocess
import sys

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/holdfast"
hours = sys.argv[2] if len(sys.argv) > 2 else "48"
seeds = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "1,2").split(",")]
aht = 240.0
ours = seed_total = 0.0
worst = 0.0
grid = itertools.product(["exponential", "lognormal"], [1, 3, 10], [0.6, 0.8, 0.9], seeds)
for dist, agents, load, seed in grid:
    arrivals = load * agents / aht * 3600
    run = subprocess.run(
        [binary, "simulate", "--agents", str(agents), "--arrivals-per-hour", str(arrivals),
         "--aht", str(aht), "--hours", hours, "--seed", str(seed),
         "--handle-distribution", dist, "--json"],
        capture_output=True, text=True, check=True)
    e = json.loads(run.stdout)["total"]["estimate"]
    compared = e["compared"]
    mae, seed_mae = e["holdfast"]["mean_absolute_error_s"], e["seed"]["mean_absolute_error_s"]
    ours += mae * compared
    seed_total += seed_mae * compared
    if compared >= 50:
        worst = max(worst, e["spoken_under_share"])
    print(f"{dist:11} agents={agents:2} load={load} seed={seed} compared={compared:5} "
          f"waited_past_phrase={e['spoken_under_share'] * 100:5.2f}% "
          f"mae={mae:7.1f}s seed_mae={seed_mae:7.1f}s")
print(f"grid: MAE {ours / seed_total:.3f} of the seed formula's; "
      f"worst waited past the phrase {worst * 100:.2f}%")
