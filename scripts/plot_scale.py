#!/usr/bin/env python3
"""Plots scripts/bench_scale.sh's CSV: CPU per packet (µs) against the number of held
callers and bridged calls, holdfast beside the floor. Plain SVG, no plotting library.

usage: plot_scale.py scale.csv out.svg
"""
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
W, H, L, R, T, B = 720, 420, 70, 190, 40, 60
series = []
for kind, colour in (("held", "#1f77b4"), ("bridged", "#d62728")):
    pts = [r for r in rows if r["kind"] == kind]
    if pts:
        series.append((f"{kind}: holdfast", colour, "", [(int(r["n"]), float(r["holdfast_us_per_packet"])) for r in pts]))
        series.append((f"{kind}: floor", colour, "6,4", [(int(r["n"]), float(r["floor_us_per_packet"])) for r in pts]))
xs = [x for *_, pts in series for x, _ in pts]
ys = [y for *_, pts in series for _, y in pts]
xmax = max(xs) * 1.05
ymax = max(ys) * 1.2
sx = lambda x: L + (W - L - R) * x / xmax
sy = lambda y: H - B - (H - T - B) * y / ymax
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2 - R/2}" y="22" text-anchor="middle" font-size="14">CPU per packet against load (µs, lower is better)</text>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>']
step = 10 ** len(str(int(xmax))) // 10 or 1
step = step if xmax / step >= 4 else step // 2 or 1
x = 0
while x <= xmax:
    out.append(f'<line x1="{sx(x)}" y1="{H-B}" x2="{sx(x)}" y2="{H-B+5}" stroke="black"/>')
    out.append(f'<text x="{sx(x)}" y="{H-B+20}" text-anchor="middle">{x}</text>')
    x += step
y = 0.0
ystep = 1.0 if ymax > 4 else 0.5
while y <= ymax:
    out.append(f'<line x1="{L-5}" y1="{sy(y)}" x2="{W-R}" y2="{sy(y)}" stroke="#ddd"/>')
    out.append(f'<text x="{L-8}" y="{sy(y)+4}" text-anchor="end">{y:g}</text>')
    y += ystep
out.append(f'<text x="{(L + W - R)/2}" y="{H-15}" text-anchor="middle">held callers / bridged calls</text>')
out.append(f'<text x="18" y="{(T + H - B)/2}" text-anchor="middle" transform="rotate(-90 18 {(T + H - B)/2})">µs of CPU per packet sent</text>')
for i, (name, colour, dash, pts) in enumerate(series):
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
    out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
    for x, y in pts:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
    ly = T + 20 + 22 * i
    out.append(f'<line x1="{W-R+15}" y1="{ly}" x2="{W-R+45}" y2="{ly}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
    out.append(f'<text x="{W-R+52}" y="{ly+4}">{name}</text>')
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
