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
