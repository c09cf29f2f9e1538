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
    """`compare.py`'s figure: each run's validation curve, and its trainable parameters."""
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in runs:
        if r.curve:
            steps, values = zip(*r.curve)
            curves.plot(steps, values, marker="o", label=r.name)
    curves.set_xlabel("step")
    curves.set_ylabel(" / ".join(sorted({r.monitor for r in runs})))
    curves.set_title("validation")
    curves.legend(fontsize="small")
    bars.barh([r.name for r in runs], [r.trainable_params or 0 for r in runs])
    bars.set_xscale("log")
    bars.set_xlabel("trainable parameters (log scale)")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)
