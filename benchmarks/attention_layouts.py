"""The two exact attention layouts for a packed batch, timed side by side (forward and backward of
one attention call, MiniLM's 12 heads of 32), on batches whose texts have the lengths of real ones:
one SDPA call per text, or one call over a padded view of the batch. `lightning_modules.
attention_kernels.layout` picks between them from the batch's shape by the padding work it would
add; this table is where its threshold (`PADDED_VIEW_MAX_WORK`) comes from, and with `--dropout
0.1` (training) the reason it takes one call per text under attention dropout on the CPU unless
every text is short.

    python benchmarks/attention_layouts.py --data_dir ../shared/data
    python benchmarks/attention_layouts.py --data_dir ../shared/data --dropout 0.1
"""

import random
import statistics

import torch

from benchmarks.common import RESULTS, Timer, machine, parser, table, write_report
from core.errors import exit_on_user_error
from core.pretrained import resolve_backbone
from datamodules import cells, sources
from lightning_modules.attention_kernels import LAYOUTS, PADDED_VIEW_MAX_WORK, layout

HEADS, HEAD_DIM = 12, 32


def text_lengths(data_dir: str, tokenizer_dir: str, count: int) -> dict[str, list[int]]:
    """Token counts of `count` real texts of each dataset, at the lengths the configs cut them to."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    found = {}
    for name, folder, fields, cut in (("AG News", "ag_news", ["text"], [128]),
                                      ("IMDB", "imdb", ["text"], [128, 512])):
        test = sources.load_local(f"{data_dir}/{folder}")["test"].shuffle(seed=0).select(range(count))
        texts = cells.joined_texts(test, fields, name)
        full = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        for max_length in cut:
            found[f"{name} at {max_length}"] = [min(n, max_length) for n in full]
    return found


def time_layout(name: str, lengths: list[int], repeats: int, dropout: float) -> float:
    """Median seconds of forward + backward of one attention call in layout `name`."""
    bounds = [0, *torch.tensor(lengths).cumsum(0).tolist()]
    q, k, v = (torch.randn(1, HEADS, bounds[-1], HEAD_DIM, requires_grad=True) for _ in range(3))
    seconds = []
    for _ in range(repeats + 1):  # the first warms up
        with Timer(torch.device("cpu")) as timer:
            LAYOUTS[name](q, k, v, bounds, dropout, None).sum().backward()
        seconds.append(timer.seconds)
    return statistics.median(seconds[1:])


def main() -> None:
    options = parser(__doc__, RESULTS / "attention-layouts-cpu.json", batch_size=16, seed=0)
    options.add_argument("--data_dir", default="../shared/data", help="folder with imdb/ and ag_news/")
    options.add_argument("--texts", type=int, default=400, help="real texts per dataset, for their lengths")
    options.add_argument("--batches", type=int, default=6, help="batches timed per dataset")
    options.add_argument("--repeats", type=int, default=5)
    options.add_argument("--dropout", type=float, default=0.0,
                         help="attention dropout: 0 as in evaluation, BERT's 0.1 as in training")
    args = options.parse_args()
    rng = random.Random(args.seed)
    rows, results = [], []
    for dataset, lengths in text_lengths(args.data_dir, resolve_backbone("minilm"), args.texts).items():
        for _ in range(args.batches):
            batch = rng.sample(lengths, args.batch_size)
            work = args.batch_size * max(batch) ** 2 / sum(n * n for n in batch)
            times = {name: time_layout(name, batch, args.repeats, args.dropout) for name in LAYOUTS}
            fastest, chosen = min(times, key=times.get), layout(batch, cpu_dropout=args.dropout > 0)
            results.append({"data": dataset, "lengths": batch, "padding_work": round(work, 2),
                            **{f"{name} ms": round(1000 * s, 2) for name, s in times.items()},
                            "fastest": fastest, "chosen": chosen})
            rows.append([dataset, f"{min(batch)}-{max(batch)}", f"{work:.2f}x",
                         *(f"{1000 * times[name]:.2f}" for name in LAYOUTS), fastest, chosen])
    print(f"\nbatch {args.batch_size}, {HEADS} heads of {HEAD_DIM}, fp32, forward + backward, on "
          f"{machine()}, attention dropout {args.dropout}; padded view chosen up to "
          f"{PADDED_VIEW_MAX_WORK}x the attention work (under dropout: per text unless all are short)\n")
    print(table(["data", "lengths", "padded work / real", *(f"{n} (ms)" for n in LAYOUTS), "fastest",
                 "chosen"], rows))
    right = sum(r["fastest"] == r["chosen"] for r in results)
    print(f"\nthe rule picks the faster layout in {right} of {len(results)} batches")
    write_report(args.out, {**vars(args), "out": str(args.out), "results": results})


if __name__ == "__main__":
    exit_on_user_error(main)
