#!/usr/bin/env bash
# scripts/bench.sh handoff [N]: cross-node dispatch latency in a two-node cluster on a
# throwaway PostgreSQL (scripts/postgres.sh), no Kamailio. N (CALLS, default 60) SIPp
# callers (sipp/caller.xml) go on hold, half on node a and half on node b, their joins
# interleaved in time (two SIPp at 10 calls/s each, started together), so the one line
# mixes the two nodes' callers. Then one agent, alice, registers on a
# (sipp/agent_register.xml); her phone is a SIPp UAS (sipp/agent_hangup.xml, -d 100) that
# answers each call, talks 100 ms and hangs up, so she serves the N callers one after
# another (wrapup = 0: free as soon as a call ends). From her phone's message trace:
# for each BYE she sends, the time until the next INVITE reaches her, split by whether
# that INVITE comes from the other node (the node of the next caller claims her in
# PostgreSQL, then rings her) or from the same node as the call she hung up. The node of
# a call is its INVITE's top Via. Reports p50/p99/max and counts of both kinds, against
# the target p99 <= 50 ms, and the store's transactions per call (pg_stat_database
# xact_commit of `holdfast`, before the callers to after the last call), next to the
# two idle nodes' background rate (reads of the change log count too). The store's
# statements of 20 ms or more during the run are counted and the slowest shown: the tail
# of the latency is usually there. KEEP=1 keeps the run's directory (node logs, the
# agent's message trace, postgres.log).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-${CALLS:-60}}
window=0  # bench_lib.sh's CPU window: unused here
out=target/bench
mkdir -p "$out"
echo "# scripts/bench.sh handoff $n"
source scripts/bench_lib.sh
command -v sipp >/dev/null || { echo "needs sipp (apt-get install sip-tester)" >&2; exit 2; }
started=$(date +%s)

dir=$(mktemp -d)
chmod 755 "$dir"
pg_port=$((55000 + RANDOM % 1000))
sink=""
nodes=()
# The nodes stop before PostgreSQL does (a bounded wait), so their logs end without the
# store errors of a server going away under them.
cleanup() {
  kill $(jobs -p) $sink 2>/dev/null || true
  for _ in $(seq 50); do
    alive=0
    for p in "${nodes[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  [ -z "${KEEP:-}" ] || cp "$dir/pg/log" "$dir/postgres.log" 2>/dev/null || true
  scripts/postgres.sh stop "$dir/pg" >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
url=$(scripts/postgres.sh start "$dir/pg" "$pg_port")
# Statements of 20 ms or more go to the server's log ($dir/pg/log): the tail's suspects.
psql -X -qAt -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
  -c "ALTER SYSTEM SET log_min_duration_statement = 20" -c "SELECT pg_reload_conf()" >/dev/null
# holdfast's committed transactions so far and the server's clock, as "commits|epoch", read
# from the `postgres` database (so the read is not one of them) after 2 s: a backend
# reports its counts to the statistics within a second or so of going idle.
commits() {
  sleep 2
  psql -X -qAt -d "${url%/holdfast}/postgres" \
    -c "SELECT xact_commit, extract(epoch FROM clock_timestamp()) FROM pg_stat_database WHERE datname = 'holdfast'"
}

base=$((15000 + RANDOM % 4000))
port_a=$base
port_b=$((base + 10))
agent_port=$((base + 20))
sink_port=$((46000 + RANDOM % 1000))
hold_s=$((n / 10 + 120))
sink=$(start_sink "$sink_port" $((hold_s + 60)))
for i in 0 1; do
  node=$([ $i = 0 ] && echo a || echo b)
  STORE_LINES="backend = \"postgres\"
url = \"$url\"
[cluster]
node = \"$node\"" bench_config $((base + 10 * i)) "$((20000 + 10000 * i))-$((29999 + 10000 * i))" "" \
    'digest_algorithms = ["MD5"]' "wrapup = 0" >"$dir/$node.toml"
  printf '[[agent]]\nuser = "alice"\npassword = "alice-secret"\n' >>"$dir/$node.toml"
  RUST_LOG=info ./target/release/holdfast serve --config "$dir/$node.toml" 2>"$dir/$node.log" &
  nodes+=($!)
done
sleep 1
# The two idle nodes' own rate of transactions (leases, the change log), to set against.
idle=$(commits)
sleep 3
s0=$(commits)
pg_log_lines=$(wc -l <"$dir/pg/log")

# The callers: N/2 to each node at the same time, staying on hold until they are served.
root=$PWD
for i in 0 1; do
  node=$([ $i = 0 ] && echo a || echo b)
  m=$(( (n + 1 - i) / 2 ))
  (cd "$dir" && exec sipp "127.0.0.1:$((base + 10 * i))" -sf "$root/sipp/caller.xml" -s 100 -i 127.0.0.1 \
    -p $((base + 30 + i)) -mp $((47000 + 100 * i)) -m "$m" -l "$m" -r 10 -d $((hold_s * 1000)) \
    -key rtp_port "$sink_port" -nostdin -timeout $((hold_s + 30))s -timeout_error \
    -trace_err -error_file "caller_$node.err" >/dev/null 2>&1) &
done
joined() { cat "$dir/a.log" "$dir/b.log" | grep -ac "caller joined queue" || true; }
deadline=$(( $(date +%s) + n / 10 + 30 ))
until [ "$(joined)" -ge "$n" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "only $(joined) of $n callers joined the queue; node logs in $dir (KEEP=1 keeps them)" >&2
    exit 1
  fi
  sleep 0.5
done
per_node="$(grep -ac "caller joined queue" "$dir/a.log" || true) $(grep -ac "caller joined queue" "$dir/b.log" || true)"
s1=$(commits)

# The agent: her phone first, then her registration on a naming it.
(cd "$dir" && exec sipp -sf "$root/sipp/agent_hangup.xml" -i 127.0.0.1 -p "$agent_port" -mp 47200 \
  -m "$n" -d 100 -nostdin -timeout $((n + 60))s -timeout_error \
  -trace_msg -message_file "$dir/agent_msg.log" -trace_err -error_file agent.err >/dev/null 2>&1) &
agent_sh=$!
sleep 0.5
registered=0
for try in 1 2 3; do
  (cd "$dir" && sipp "127.0.0.1:$port_a" -sf "$root/sipp/agent_register.xml" -i 127.0.0.1 \
    -p $((base + 21 + try)) -mp $((47300 + 10 * try)) -m 1 -s alice -au alice -ap alice-secret \
    -key contact_port "$agent_port" -key expires 3600 -nostdin -timeout 10s -timeout_error \
    >/dev/null 2>&1) && { registered=1; break; }
done
[ "$registered" = 1 ] || { echo "alice's registration on a failed; node logs in $dir" >&2; exit 1; }
served_t0=$(date +%s.%N)
wait "$agent_sh" && agent_ok=1 || agent_ok=0
served_t1=$(date +%s.%N)
s2=$(commits)
connected="$(grep -ac "caller connected to agent" "$dir/a.log" || true) $(grep -ac "caller connected to agent" "$dir/b.log" || true)"
# Anything the nodes warned about (a claim not made, a lease, a store error...).
# The logs are coloured (ANSI escapes): stripped, timestamps and key=value fields dropped.
warnings=$(cat "$dir/a.log" "$dir/b.log" | sed -E 's/\x1b\[[0-9;]*m//g' | grep -a -E "^[^ ]+ +(WARN|ERROR) " |
  sed -E 's/^[^ ]+ +//; s/ [a-z_]+=.*//' | sort | uniq -c | sort -rn | head -8 || true)
# The store's slow statements from the callers' start on, slowest first (duration, then the statement).
slow=$(tail -n +$((pg_log_lines + 1)) "$dir/pg/log" | grep -a "duration: " | sed -E 's/.*duration: ([0-9.]+) ms +(statement|execute [^:]*|parse [^:]*|bind [^:]*): */\1 ms  /' |
  sort -rn | cut -c1-150 || true)
elapsed=$(( $(date +%s) - started ))

python3 - "$n" "$dir/agent_msg.log" "$port_a" "$port_b" "$out/handoff.json" "$agent_ok" "$per_node" "$connected" \
  "$idle" "$s0" "$s1" "$s2" "$served_t0" "$served_t1" "$elapsed" "$warnings" "$slow" <<'PY'
import json, re, sys
n, trace, port_a, port_b, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
agent_ok, per_node, connected = sys.argv[6] == "1", sys.argv[7], sys.argv[8]
# (commits, seconds) of the store: idle nodes, before the callers, all joined, all served.
idle, s0, s1, s2 = ([float(v) for v in x.split("|")] for x in sys.argv[9:13])
served_t0, served_t1 = float(sys.argv[13]), float(sys.argv[14])
elapsed, warnings = int(sys.argv[15]), sys.argv[16]
slow = [l for l in sys.argv[17].split("\n") if l.strip()]
nodes = {f"127.0.0.1:{port_a}": "a", f"127.0.0.1:{port_b}": "b"}

# SIPp's -trace_msg file: each message follows a line of dashes ending in its local time,
# "YYYY-MM-DD HH:MM:SS.ffffff", and a line "UDP message sent (...)" or "UDP message received [...]".
from datetime import datetime, timezone
stamp = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$")
messages = []  # (seconds, "sent"|"received", first line, Call-ID, top Via host:port)
lines = open(trace, errors="replace").read().split("\n")
i = 0
while i < len(lines):
    m = stamp.match(lines[i])
    if not m:
        i += 1
        continue
    t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    direction = "sent" if "message sent" in lines[i + 1] else "received"
    j = i + 2
    while j < len(lines) and not lines[j].strip():
        j += 1
    first, call_id, via = lines[j].strip() if j < len(lines) else "", None, None
    k = j + 1
    while k < len(lines) and lines[k].strip():
        h = lines[k]
        name, _, value = h.partition(":")
        name = name.strip().lower()
        if name in ("call-id", "i") and call_id is None:
            call_id = value.strip()
        elif name in ("via", "v") and via is None:
            via = re.search(r"SIP/2\.0/\w+\s+([^;,\s]+)", value)
            via = via.group(1) if via else None
        k += 1
    messages.append((t, direction, first, call_id, via))
    i = k

node_of = {}        # Call-ID -> node that rang her
handoff, same, gaps = [], [], []  # gaps: (ms, BYE time, BYE's node, next INVITE's node)
pending_bye = None  # (time, node) of her last BYE not yet followed by an INVITE
active = set()      # calls she is in (INVITE received, BYE not yet sent)
overlapping, cancels, byes = 0, 0, 0
for t, direction, first, call_id, via in messages:
    method = first.split(" ", 1)[0]
    if direction == "received" and method == "INVITE" and call_id not in node_of:
        node_of[call_id] = nodes.get(via, via or "?")
        if active:
            overlapping += 1
        active.add(call_id)
        if pending_bye is not None:
            bye_t, bye_node = pending_bye
            ms = (t - bye_t) * 1000.0
            (handoff if node_of[call_id] != bye_node else same).append(ms)
            gaps.append((ms, bye_t, bye_node, node_of[call_id]))
            pending_bye = None
    elif direction == "sent" and method == "BYE" and call_id in active:
        active.discard(call_id)
        byes += 1
        pending_bye = (t, node_of.get(call_id, "?"))
    elif direction == "received" and method == "CANCEL":
        cancels += 1

def summary(xs):
    xs = sorted(xs)
    pct = lambda p: round(xs[min(len(xs) - 1, max(0, -(-p * len(xs) // 100) - 1))], 2) if xs else None
    return {"count": len(xs), "p50": pct(50), "p99": pct(99), "max": round(xs[-1], 2) if xs else None}

rang_by = {"a": 0, "b": 0}
for node in node_of.values():
    rang_by[node] = rang_by.get(node, 0) + 1
served = byes
idle_rate = (s0[0] - idle[0]) / (s0[1] - idle[1])
per_call = lambda a, b, calls: round((b[0] - a[0]) / max(calls, 1), 2)
# The same, less what the nodes commit when idle over that time.
net = lambda a, b, calls: round((b[0] - a[0] - idle_rate * (b[1] - a[1])) / max(calls, 1), 2)
result = {
    "kind": "handoff", "command": f"scripts/bench.sh handoff {n}", "callers": n, "joined_per_node_log": per_node,
    "calls_served": served, "agent_exit_ok": agent_ok,
    "invites_from": rang_by, "connected_per_node_log": connected,
    "overlapping_invites": overlapping, "cancels_received": cancels,
    "bye_to_next_invite_ms": {"handoff": summary(handoff), "same_node": summary(same),
                              "all": summary(handoff + same)},
    "target_p99_ms": 50,
    "slowest": [{"ms": round(ms, 2), "bye_at": datetime.fromtimestamp(t, timezone.utc).isoformat(),
                 "from": a, "to": b} for ms, t, a, b in sorted(gaps, reverse=True)[:5]],
    "store_transactions_per_call": per_call(s0, s2, served),
    "store_transactions_per_call_net_of_idle": net(s0, s2, served),
    "store_transactions_per_call_joining": per_call(s0, s1, n),
    "store_transactions_per_call_serving": per_call(s1, s2, served),
    "store_transactions_per_call_serving_net_of_idle": net(s1, s2, served),
    "store_idle_transactions_per_s": round(idle_rate, 2),
    "store_statements_over_20ms": len(slow),
    "store_slowest_statement_ms": float(slow[0].split()[0]) if slow else None,
    "serving_seconds": round(served_t1 - served_t0, 2),
    "run_seconds": elapsed,
}
json.dump(result, open(path, "w"), indent=1)
r = result["bye_to_next_invite_ms"]
print(f"{'BYE -> next INVITE':<22}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
for label, key in (("handoff (other node)", "handoff"), ("same node", "same_node"), ("all", "all")):
    s = r[key]
    print(f"{label:<22}{s['count']:>7}{str(s['p50']):>9}{str(s['p99']):>9}{str(s['max']):>9}")
p99 = r["handoff"]["p99"]
verdict = "-" if p99 is None else ("met" if p99 <= 50 else "MISSED")
print(f"target: handoff p99 <= 50 ms: {verdict}")
print("slowest: " + ", ".join(f"{g['ms']} ms {g['from']}->{g['to']} (BYE at {g['bye_at'][11:23]}Z)" for g in result["slowest"][:3]))
print(f"handoff: callers={n} joined(a b)={per_node} served={served} agent_ok={agent_ok} "
      f"rung by a={rang_by.get('a', 0)} b={rang_by.get('b', 0)} overlapping={overlapping} cancels={cancels} "
      f"serving={result['serving_seconds']}s run={elapsed}s")
print(f"store: {result['store_transactions_per_call']} transactions/call "
      f"({result['store_transactions_per_call_net_of_idle']} net of the idle nodes' {result['store_idle_transactions_per_s']}/s; "
      f"joining {result['store_transactions_per_call_joining']}, serving {result['store_transactions_per_call_serving']}, "
      f"net {result['store_transactions_per_call_serving_net_of_idle']})")
if slow:
    print(f"store statements >= 20 ms: {len(slow)}, slowest:")
    print("\n".join("  " + l for l in slow[:5]))
if warnings.strip():
    print("node log warnings/errors (count, line):")
    print(warnings)
PY
