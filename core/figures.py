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
    ax.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
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


def sweep_figure(rows: list[dict], objective: str, maximize: bool, log_scale: dict[str, bool]) -> plt.Figure:
    """A sweep's figure: the objective of each trial in order with the best so far (pruned trials
    at their last report, as crosses), then one panel per parameter against the objective."""
    params = list(log_scale)
    fig, axes = plt.subplots(1, len(params) + 1, figsize=(5 * (len(params) + 1), 4), squeeze=False)
    scored = [r for r in rows if r[objective] is not None]
    ax = axes[0, 0]
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        picked = [r for r in scored if r["state"] == state]
        ax.scatter([r["trial"] for r in picked], [r[objective] for r in picked], marker=marker,
                   label=state.lower())
    complete = [r for r in scored if r["state"] == "COMPLETE"]
    best, steps = None, []
    for r in complete:
        best = r[objective] if best is None or (r[objective] > best) == maximize else best
        steps.append((r["trial"], best))
    if steps:
        ax.step(*zip(*steps), where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=objective,
           title=f"{objective} ({'higher' if maximize else 'lower'} is better)")
    ax.legend(fontsize="small")
    for ax, key in zip(axes[0, 1:], params):
        values = [r for r in scored if r.get(key) is not None]
        if any(isinstance(r[key], str) for r in values):  # categorical text: one position per choice
            choices = sorted({str(r[key]) for r in values})
            xs = [choices.index(str(r[key])) for r in values]
            ax.set_xticks(range(len(choices)), choices)
        else:
            xs = [r[key] for r in values]
        ax.scatter(xs, [r[objective] for r in values],
                   c=["tab:blue" if r["state"] == "COMPLETE" else "tab:orange" for r in values])
        if log_scale[key]:
            ax.set_xscale("log")
        ax.set(xlabel=key.replace(".init_args.", "."), ylabel=objective)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)
