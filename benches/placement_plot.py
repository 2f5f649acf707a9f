#!/usr/bin/env python3
"""Plots benches/placement.py's results.json: the job's throughput over each
run's sampling window, one line per run, coloured by placement, labelled
with the nodes its TaskManagers ran on.

    placement_plot.py RESULTS.json OUT.png

Needs matplotlib (benches/placement.sh installs it into a cached venv).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

COLOURS = {"default-scheduler": "tab:red", "flinkgate": "tab:blue"}


def main(results_path, out_path):
    with open(results_path) as f:
        results = json.load(f)
    heal = results.get("heal")
    if heal and not results["runs"]:
        # Only the heal phase ran (--reps 0): one plot.
        fig, heal_ax = plt.subplots(figsize=(10, 5.5))
        plot_heal(heal_ax, heal)
        fig.tight_layout()
        fig.savefig(out_path, dpi=110)
        return
    if heal:
        fig, (ax, heal_ax) = plt.subplots(2, 1, figsize=(10, 10))
    else:
        fig, ax = plt.subplots(figsize=(10, 5.5))
    for run in results["runs"]:
        if not run["samples"]:
            continue
        start = run["samples"][0][0]
        xs = [t - start for t, _ in run["samples"]]
        ys = [rate for _, rate in run["samples"]]
        nodes = run["taskmanager_nodes"]
        where = " ".join(f"{n}x{nodes.count(n)}" for n in sorted(set(nodes)))
        ax.plot(xs, ys, color=COLOURS.get(run["placement"], "gray"), marker="o", markersize=3,
                label=f"{run['label']}: {run['mean']:.0f} rec/s on {where}")
    summary = results["summary"]
    gain = summary.get("gain")
    title = "CpuBound job throughput, TaskManagers placed by default-scheduler vs flinkgate"
    if gain is not None:
        title += f"\nplacement gain {gain * 100:+.0f}% (medians over {len(results['runs']) // 2} runs each)"
    ax.set_title(title)
    ax.set_xlabel("seconds into the sampling window")
    ax.set_ylabel("records per second (sum over subtasks)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if heal:
        plot_heal(heal_ax, heal)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


def plot_heal(ax, heal):
    """The third phase: throughput over time, the slowdown and each move."""
    start = heal["samples"][0][0] if heal["samples"] else 0.0
    ax.plot([t - start for t, _ in heal["samples"]], [r for _, r in heal["samples"]],
            color=COLOURS["flinkgate"], marker="o", markersize=3, label="throughput")
    for t, what in heal["marks"]:
        colour = "tab:red" if "slowed" in what else "tab:green"
        ax.axvline(t - start, color=colour, linestyle="--", alpha=0.7)
        ax.annotate(what, (t - start, 0), rotation=90, va="bottom", ha="right", fontsize=8)
    ax.axhline(0.9 * heal["before"], color="gray", linestyle=":", label="90% of before")
    recovered = heal.get("recovered_after_seconds")
    outcome = f"recovered {recovered:.0f}s after the slowdown" if recovered is not None else "not recovered"
    ax.set_title(f"scheduling.rebalance: a node slowed mid-run, {heal['moves']} move(s), {outcome}")
    ax.set_xlabel("seconds")
    ax.set_ylabel("records per second (sum over subtasks)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
