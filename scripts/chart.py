#!/usr/bin/env python3
"""Throughput and latency of `orders serve` against concurrency, as an SVG drawn by hand.
Python standard library only.

    scripts/chart.py run [--orders 10000] [--concurrency 1,4,16,64,256] [--out-dir target/chart-runs]
    scripts/chart.py draw target/chart-runs/c*.json [--svg docs/bench/throughput.svg]

`run`: for each concurrency, a fresh `target/release/orders serve` on a new SQLite file and one
closed-loop `orders loadtest --url … --orders N --concurrency C --wait --json`, saved as
OUT_DIR/cC.json with the server's peak RSS (VmHWM) added as "serverPeakRssKib". Build first:
`cargo build --release -p orders`.

`draw`: reads `orders loadtest --json` files (any runs; several at one concurrency are all drawn,
so the spread shows) and writes two panels: accepted/s and completed/s against concurrency, and
accept latency p50/p99 (log scale) against concurrency.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- run

def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cmd_run(args) -> int:
    orders_bin = ROOT / "target/release/orders"
    if not orders_bin.exists():
        sys.exit("build it first: cargo build --release -p orders")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for c in [int(x) for x in args.concurrency.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            listen = f"127.0.0.1:{args.port}"
            server = subprocess.Popen([str(orders_bin), "serve", "--data", f"{tmp}/orders.db", "--listen", listen],
                                      stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/serve.log", "wb"))
            try:
                for _ in range(100):
                    try:
                        urllib.request.urlopen(f"http://{listen}/health", timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                out = subprocess.run([str(orders_bin), "loadtest", "--url", f"http://{listen}", "--orders",
                                      str(args.orders), "--concurrency", str(c), "--wait", "--json"],
                                     stdout=subprocess.PIPE, check=False)
                report = json.loads(out.stdout)
                report["serverPeakRssKib"] = peak_rss_kib(server.pid)
                report["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                report["loadAverage"] = os.getloadavg()[0]
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
        path = args.out_dir / f"c{c}.json"
        path.write_text(json.dumps(report, indent=2))
        wait = report.get("wait") or {}
        print(f"c={c:<4} accepted/s {report['acceptedPerSecond']:>9.0f}  completed/s "
              f"{(wait.get('finishedPerSecond') or 0):>7.0f}  accept p50/p99 "
              f"{report['acceptLatencyMs']['p50']:.2f}/{report['acceptLatencyMs']['p99']:.2f} ms  "
              f"serve peak RSS {report['serverPeakRssKib'] / 1024:.0f} MiB  errors {report['errors']['total']}",
              file=sys.stderr)
    return 0


# ---------------------------------------------------------------- draw

W, H = 960, 420
PANEL_W, PANEL_H = 360, 280
MARGIN_L, MARGIN_T = 80, 70
GAP = 120
COLOURS = {"accepted/s": "#1f77b4", "completed/s": "#2ca02c", "p50": "#ff7f0e", "p99": "#d62728"}


def nice_max(v: float) -> float:
    if v <= 0:
        return 1
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Panel:
    def __init__(self, x0: float, title: str, xs: list[int], y_label: str, y_max: float, log_y: bool,
                 y_min: float = 1):
        self.x0, self.title, self.xs, self.log_y = x0, title, xs, log_y
        self.y_label, self.y_max, self.y_min = y_label, y_max, y_min
        self.parts: list[str] = []

    def px(self, c: float) -> float:
        lo, hi = math.log2(min(self.xs)), math.log2(max(self.xs))
        return self.x0 + (math.log2(c) - lo) / ((hi - lo) or 1) * PANEL_W

    def py(self, v: float) -> float:
        if self.log_y:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            f = (math.log10(max(v, self.y_min)) - lo) / (hi - lo)
        else:
            f = v / self.y_max
        return MARGIN_T + PANEL_H - f * PANEL_H

    def axes(self) -> None:
        p = self.parts
        p.append(f'<text x="{self.x0 + PANEL_W / 2}" y="{MARGIN_T - 14}" text-anchor="middle" '
                 f'font-weight="bold">{esc(self.title)}</text>')
        p.append(f'<rect x="{self.x0}" y="{MARGIN_T}" width="{PANEL_W}" height="{PANEL_H}" '
                 f'fill="none" stroke="#888"/>')
        for c in self.xs:
            x = self.px(c)
            p.append(f'<line x1="{x:.1f}" y1="{MARGIN_T}" x2="{x:.1f}" y2="{MARGIN_T + PANEL_H}" stroke="#eee"/>')
            p.append(f'<text x="{x:.1f}" y="{MARGIN_T + PANEL_H + 18}" text-anchor="middle">{c}</text>')
        p.append(f'<text x="{self.x0 + PANEL_W / 2}" y="{MARGIN_T + PANEL_H + 40}" text-anchor="middle">'
                 f'concurrency (connections, log scale)</text>')
        if self.log_y:
            ticks, v = [], self.y_min
            while v <= self.y_max * 1.0001:
                ticks.append(v)
                v *= 10
        else:
            ticks = [self.y_max * i / 5 for i in range(6)]
        for t in ticks:
            y = self.py(t)
            p.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x0 + PANEL_W}" y2="{y:.1f}" stroke="#eee"/>')
            label = f"{t:g}" if t < 1000 else f"{t / 1000:g}k"
            p.append(f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        p.append(f'<text transform="translate({self.x0 - 52},{MARGIN_T + PANEL_H / 2}) rotate(-90)" '
                 f'text-anchor="middle">{esc(self.y_label)}</text>')

    def series(self, name: str, points: list[tuple[int, float]], legend_row: int) -> None:
        colour = COLOURS[name]
        by_c: dict[int, list[float]] = {}
        for c, v in points:
            by_c.setdefault(c, []).append(v)
        line = [(c, sorted(vs)[len(vs) // 2]) for c, vs in sorted(by_c.items())]
        if len(line) > 1:
            d = " ".join(f"{'M' if i == 0 else 'L'}{self.px(c):.1f},{self.py(v):.1f}" for i, (c, v) in enumerate(line))
            self.parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for c, v in points:
            self.parts.append(f'<circle cx="{self.px(c):.1f}" cy="{self.py(v):.1f}" r="3.5" fill="{colour}">'
                              f'<title>{name} at {c}: {v:,.2f}</title></circle>')
        lx, ly = self.x0 + 12, MARGIN_T + 16 + 18 * legend_row
        self.parts.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 20}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
        self.parts.append(f'<text x="{lx + 26}" y="{ly}">{esc(name)}</text>')


def cmd_draw(args) -> int:
    runs = [json.loads(Path(f).read_text()) for f in args.runs]
    if not runs:
        sys.exit("no runs given")
    xs = sorted({r["concurrency"] for r in runs})
    accepted = [(r["concurrency"], r["acceptedPerSecond"]) for r in runs]
    completed = [(r["concurrency"], r["wait"]["finishedPerSecond"]) for r in runs
                 if r.get("wait") and r["wait"].get("finishedPerSecond")]
    p50 = [(r["concurrency"], r["acceptLatencyMs"]["p50"]) for r in runs if r.get("acceptLatencyMs")]
    p99 = [(r["concurrency"], r["acceptLatencyMs"]["p99"]) for r in runs if r.get("acceptLatencyMs")]

    left = Panel(MARGIN_L, "Throughput", xs, "orders per second",
                 nice_max(max(v for _, v in accepted + completed)), log_y=False)
    left.axes()
    left.series("accepted/s", accepted, 0)
    if completed:
        left.series("completed/s", completed, 1)
    lat = [v for _, v in p50 + p99]
    right = Panel(MARGIN_L + PANEL_W + GAP, "Accept latency", xs, "milliseconds (log scale)",
                  10 ** math.ceil(math.log10(max(lat))), log_y=True,
                  y_min=10 ** math.floor(math.log10(max(min(lat), 1e-3))))
    right.axes()
    right.series("p50", p50, 0)
    right.series("p99", p99, 1)

    orders = sorted({r["orders"] for r in runs})
    caption = (f"orders serve (release, SQLite, synchronous=FULL) and orders loadtest --wait on one 2-core "
               f"machine; closed loop, {', '.join(map(str, orders))} orders per run; {len(runs)} runs. "
               f"Lines join medians; dots are runs.")
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
           f'orders serve: throughput and latency against concurrency</text>',
           *left.parts, *right.parts,
           f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle" fill="#555">{esc(caption)}</text>',
           "</svg>"]
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text("\n".join(svg) + "\n")
    print(f"wrote {args.svg}", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--orders", type=int, default=10000)
    r.add_argument("--concurrency", default="1,4,16,64,256")
    r.add_argument("--port", type=int, default=3917)
    r.add_argument("--out-dir", type=Path, default=ROOT / "target/chart-runs")
    d = sub.add_parser("draw")
    d.add_argument("runs", nargs="+")
    d.add_argument("--svg", type=Path, default=ROOT / "docs/bench/throughput.svg")
    args = ap.parse_args()
    return cmd_run(args) if args.command == "run" else cmd_draw(args)


if __name__ == "__main__":
    sys.exit(main())
