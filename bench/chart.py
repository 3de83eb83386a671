#!/usr/bin/env python3
"""Bar chart of RSS per profile (reads a JSON spec on stdin, writes the PNG named by argv[1]).

Bars: ours on the host, ours armv7 under qemu-arm (emulated), ADP's published observed
RSS; a line per profile at the goal (a quarter of ADP's memory). Needs matplotlib
(checks/bench.sh installs it into bench/.venv).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

spec = json.load(sys.stdin)
profiles = spec["profiles"]
series = [
    ("agent-data-plane, x86_64 host", spec["ours"], "#2b6cb0"),
    ("agent-data-plane, armv7 (qemu-arm, emulated)", spec["arm"], "#68a4dd"),
    ("ADP published (observed)", spec["adp"], "#a0a0a0"),
]
width = 0.26
fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
for i, (label, values, color) in enumerate(series):
    xs = [j + (i - 1) * width for j in range(len(profiles))]
    vals = [v if v is not None else 0 for v in values]
    bars = ax.bar(xs, vals, width, label=label, color=color)
    for b, v in zip(bars, values):
        ax.annotate("n/a" if v is None else f"{v:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
for j, g in enumerate(spec["goal"]):
    ax.hlines(g, j - 1.6 * width, j + 1.6 * width, colors="#c53030", linestyles="--",
              label="goal (¼ of ADP)" if j == 0 else None)
ax.set_xticks(range(len(profiles)))
ax.set_xticklabels(profiles)
ax.set_ylabel("RSS, MiB (steady: median of the last half)")
ax.set_title(f"DogStatsD RSS per load profile — {spec['date']}")
ax.legend(fontsize=8, loc="upper left")
ax.grid(axis="y", alpha=0.3)
fig.tight_layout()
fig.savefig(sys.argv[1], metadata={"Software": None})
