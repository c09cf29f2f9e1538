"""Figures for TensorBoard, drawn with matplotlib's non-interactive backend."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def confusion_matrix_figure(counts: torch.Tensor, label_names: list[str]) -> plt.Figure:
    """Rows are true labels, columns predictions; cells show counts, colour the row share."""
    counts = counts.cpu()
    shares = counts / counts.sum(1, keepdim=True).clamp(min=1)
    size = 1.5 + 0.8 * len(label_names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=45, ha="right")
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            ax.text(j, i, int(counts[i, j]), ha="center", va="center",
                    color="white" if shares[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def comparison_figure(runs: list) -> plt.Figure:
    """`compare.py`'s figure: one panel per monitored metric, so runs monitored on val/acc and on
    val/perplexity never share an axis, each titled with its recorded mode; then each run's
    trainable parameters."""
    monitors = sorted({(r.monitor, r.mode) for r in runs if r.monitor})
    fig, axes = plt.subplots(1, len(monitors) + 1, figsize=(6 * (len(monitors) + 1), 4.5), squeeze=False)
    for ax, (monitor, mode) in zip(axes[0], monitors):
        for r in runs:
            if (r.monitor, r.mode) == (monitor, mode) and r.curve:
                ax.plot(*zip(*r.curve), marker="o", label=r.name)
        ax.set(xlabel="step", ylabel=monitor,
               title=f"{monitor} ({'higher' if mode == 'max' else 'lower'} is better)")
        ax.legend(fontsize="small")
    bars = axes[0, -1]
    bars.barh([r.name for r in runs], [r.trainable_params or 0 for r in runs])
    bars.set_xscale("log")
    bars.set_xlabel("trainable parameters (log scale)")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)
