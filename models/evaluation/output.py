"""An evaluation report as a terminal table and as a PNG chart (the JSON is `Report.to_json`)."""

from __future__ import annotations

from pathlib import Path

from models.evaluation.protocol import METRICS, Report


def table(report: Report) -> str:
    k = report.k
    lines = [
        f"{report.dataset} — {report.split}",
        (
            f"k={k}, {report.customers} customers evaluated "
            f"({report.cold_customers} without history left out), "
            f"{report.candidates} candidate items, {report.train_events} train events, "
            f"95 % bootstrap intervals ({report.bootstrap} resamples over customers)"
        ),
        "",
    ]
    head = (
        f"{'method':<23}"
        + "".join(f"{m + '@' + str(k):<26}" for m in METRICS)
        + f"{'coverage':>9}{'seconds':>9}"
    )
    lines += [head, "-" * len(head)]
    for m in report.methods:
        cells = "".join(
            f"{v:.4f} [{lo:.4f}, {hi:.4f}]".ljust(26) for v, lo, hi in (m.intervals[x] for x in METRICS)
        )
        lines.append(f"{m.name:<23}{cells}{m.coverage:>9.3f}{m.seconds:>9.1f}")
    if report.comparisons:
        lines += ["", f"pipeline minus each method (paired bootstrap), map@{k} and precision@{k}:"]
        for other, by_metric in report.comparisons.items():
            parts = []
            for metric in ("map", "precision"):
                d, lo, hi, p = by_metric[metric]
                parts.append(f"{metric} {d:+.4f} [{lo:+.4f}, {hi:+.4f}] above 0 in {p:.0%}")
            lines.append(f"  vs {other:<22} " + "; ".join(parts))
    return "\n".join(lines)


def chart(report: Report, path: Path) -> Path:
    """One panel per metric: each method's value with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.name for m in report.methods]
    fig, axes = plt.subplots(
        1, len(METRICS), figsize=(4.2 * len(METRICS), 0.45 * len(names) + 1.8), sharey=True
    )
    for ax, metric in zip(axes, METRICS, strict=True):
        values = [m.intervals[metric][0] for m in report.methods]
        lows = [m.intervals[metric][0] - m.intervals[metric][1] for m in report.methods]
        highs = [m.intervals[metric][2] - m.intervals[metric][0] for m in report.methods]
        colours = ["tab:orange" if n == "pipeline" else "tab:blue" for n in names]
        ax.barh(names, values, xerr=[lows, highs], color=colours, capsize=3)
        ax.set_title(f"{metric}@{report.k}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # the y axis is shared: once puts the first method on top in every panel
    fig.suptitle(f"{report.dataset}: {report.split}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
