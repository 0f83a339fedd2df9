"""What a SIPp run left in its directory, for scripts/bench_setup.sh and bench_cluster.sh:
the last line of its -trace_stat file (stat.csv) and its -trace_rtt response times."""
import csv
import glob


def counters(d):
    """A reader of the cumulative counters (e.g. "FailedCall(C)") of the run's last stat line."""
    rows = list(csv.DictReader(open(f"{d}/stat.csv"), delimiter=";"))
    last = rows[-1] if rows else {}

    def count(name):
        try:
            return int(last.get(name, "0") or 0)
        except ValueError:
            return 0

    return count


def response_times(d):
    """The sorted response times (ms) of every *_rtt.csv, and a percentile function over them."""
    rtts = []
    for f in glob.glob(f"{d}/*_rtt.csv"):
        for line in open(f):
            parts = line.strip().split(";")
            if len(parts) >= 2:
                try:
                    rtts.append(float(parts[1]))
                except ValueError:
                    pass
    rtts.sort()

    def pct(p):
        return round(rtts[min(len(rtts) - 1, int(p / 100 * len(rtts)))], 3) if rtts else None

    return rtts, pct
