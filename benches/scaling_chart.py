#!/usr/bin/env python3
"""Turns benches/results/scaling.csv (written by benches/scaling.sh) into an SVG chart, or a table.

    python3 benches/scaling_chart.py CSV SVG      # the chart
    python3 benches/scaling_chart.py --table CSV  # the table, as benches/scaling.sh prints it

The CSV's columns: workload,runtime,cores,throughput,efficiency,pinned. The chart has one row
of panels per workload: throughput against cores on the left, efficiency against linear on the
right (1.0 = N cores do N times the work of one), one line per runtime, in the same colour in
every panel. Python 3.11's standard library only: the SVG is written by hand.
"""

import csv
import sys
from xml.sax.saxutils import escape

COLOURS = {
    "solo": "#d62728",
    "solo-reuseport": "#d62728",
    "solo-acceptor": "#ff7f0e",
    "tokio": "#1f77b4",
    "monoio": "#2ca02c",
}
EXTRA = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
TITLES = {
    "echo": "echo, 1 KiB round trips/s",
    "http": "hello_http, requests/s (wrk)",
    "kv_set": "kv SET, requests/s (redis-benchmark -P 16)",
    "kv_get": "kv GET, requests/s (redis-benchmark -P 16)",
}


def load(path):
    """The rows of the CSV, grouped: {workload: {runtime: [(cores, throughput, eff, pinned)]}}."""
    data = {}
    try:
        f = open(path, newline="")
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    with f:
        reader = csv.DictReader(f)
        need = {"workload", "runtime", "cores", "throughput", "efficiency", "pinned"}
        if not need <= set(reader.fieldnames or []):
            sys.exit(f"{path}: not a scaling CSV (columns {reader.fieldnames}, want {sorted(need)})")
        for line, row in enumerate(reader, start=2):
            try:
                cores = int(row["cores"])
                thr = float(row["throughput"])
                eff = float(row["efficiency"]) if row["efficiency"] else None
            except ValueError as e:
                sys.exit(f"{path}:{line}: {e}")
            data.setdefault(row["workload"], {}).setdefault(row["runtime"], []).append(
                (cores, thr, eff, row["pinned"])
            )
    order = list(COLOURS)
    rank = lambda r: (order.index(r) if r in order else len(order), r)  # noqa: E731
    for workload, runs in data.items():
        for points in runs.values():
            points.sort()
        data[workload] = {r: runs[r] for r in sorted(runs, key=rank)}
    return data


def human(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k"
    return f"{v:.0f}"


def table(data):
    cores = sorted({c for runs in data.values() for pts in runs.values() for c, *_ in pts})
    head = f"{'workload':<8} {'runtime':<15}" + "".join(f"{'N=' + str(c):>20}" for c in cores)
    print(head)
    for workload, runs in data.items():
        for runtime, points in runs.items():
            by = {c: (t, e, p) for c, t, e, p in points}
            cells = []
            for c in cores:
                if c not in by:
                    cells.append(f"{'—':>20}")
                    continue
                t, e, p = by[c]
                mark = "" if p == "yes" else "*"
                eff = f" ({e * 100:.0f}%)" if e is not None else ""
                cells.append(f"{human(t) + eff + mark:>20}")
            print(f"{workload:<8} {runtime:<15}" + "".join(cells))
    print("* the load generator shared the servers' cores (no core left to pin it away)")


def nice_max(v):
    """A round upper bound for an axis, and its step (5 steps)."""
    if v <= 0:
        return 1.0, 0.2
    mag = 10 ** (len(str(int(v))) - 1)
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = m * mag
        if top >= v:
            return top, top / 5
    return 10 * mag, 2 * mag


def chart(data, out):
    workloads = list(data)
    runtimes = []
    for runs in data.values():
        for r in runs:
            if r not in runtimes:
                runtimes.append(r)
    colour = {}
    for i, r in enumerate(runtimes):
        colour[r] = COLOURS.get(r, EXTRA[i % len(EXTRA)])
    max_cores = max(c for runs in data.values() for pts in runs.values() for c, *_ in pts)
    pw, ph = 380, 220  # one panel's plot area
    ml, mr, mt, mb = 70, 20, 40, 45  # margins around a plot area
    legend_h = 30
    width = 2 * (ml + pw + mr)
    height = legend_h + len(workloads) * (mt + ph + mb)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    x = 10
    for r in runtimes:
        svg.append(f'<line x1="{x}" y1="15" x2="{x + 24}" y2="15" stroke="{colour[r]}" stroke-width="3"/>')
        svg.append(f'<text x="{x + 30}" y="19">{escape(r)}</text>')
        x += 40 + 8 * len(r)
    svg.append(
        f'<text x="{width - 10}" y="19" text-anchor="end" fill="#555">'
        "hollow points: load generator on the servers' cores</text>"
    )

    def xpos(x0, c):
        span = max(max_cores - 1, 1)
        return x0 + (c - 1) / span * pw if max_cores > 1 else x0 + pw / 2

    for row, workload in enumerate(workloads):
        runs = data[workload]
        top_y = legend_h + row * (mt + ph + mb) + mt
        for col, (title, value_of, is_eff) in enumerate(
            [
                (TITLES.get(workload, workload), lambda p: p[1], False),
                (f"{workload}: efficiency against linear", lambda p: p[2], True),
            ]
        ):
            x0 = col * (ml + pw + mr) + ml
            values = [value_of(p) for pts in runs.values() for p in pts if value_of(p) is not None]
            if is_eff:
                top, step = max(1.2, max(values, default=1.0) * 1.1), 0.2
                top = round(top / step + 0.4999) * step
            else:
                top, step = nice_max(max(values, default=1.0))

            def ypos(v):
                return top_y + ph - v / top * ph

            svg.append(f'<text x="{x0}" y="{top_y - 12}" font-weight="bold">{escape(title)}</text>')
            svg.append(f'<rect x="{x0}" y="{top_y}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
            k = 0
            while k * step <= top + 1e-9:
                v = k * step
                y = ypos(v)
                svg.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="#eee"/>')
                label = f"{v * 100:.0f}%" if is_eff else human(v)
                svg.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
                k += 1
            if is_eff:
                y = ypos(1.0)
                svg.append(
                    f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" '
                    'stroke="#444" stroke-dasharray="4 3"/>'
                )
            ticks = sorted({c for pts in runs.values() for c, *_ in pts})
            for c in ticks:
                x = xpos(x0, c)
                svg.append(f'<text x="{x:.1f}" y="{top_y + ph + 16}" text-anchor="middle">{c}</text>')
            svg.append(
                f'<text x="{x0 + pw / 2}" y="{top_y + ph + 34}" text-anchor="middle" fill="#555">'
                "server cores (threads, shards)</text>"
            )
            for runtime, pts in runs.items():
                pts = [p for p in pts if value_of(p) is not None]
                if not pts:
                    continue
                coords = [(xpos(x0, p[0]), ypos(value_of(p)), p[3]) for p in pts]
                if len(coords) > 1:
                    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
                    svg.append(
                        f'<polyline points="{path}" fill="none" stroke="{colour[runtime]}" stroke-width="2"/>'
                    )
                for x, y, pinned in coords:
                    fill = colour[runtime] if pinned == "yes" else "white"
                    svg.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" '
                        f'stroke="{colour[runtime]}" stroke-width="2"/>'
                    )
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


def main(argv):
    if len(argv) == 3 and argv[1] == "--table":
        table(load(argv[2]))
    elif len(argv) == 3 and not argv[1].startswith("--"):
        data = load(argv[1])
        if not data:
            sys.exit(f"{argv[1]}: no rows to draw")
        chart(data, argv[2])
    else:
        sys.exit("usage: scaling_chart.py CSV SVG | scaling_chart.py --table CSV")


if __name__ == "__main__":
    main(sys.argv)
