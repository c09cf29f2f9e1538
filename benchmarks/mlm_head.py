"""What computing the MLM vocabulary head only at masked positions saves, per training step.

Times forward + backward of a random-weight MLM on random blocks with 15% of positions masked:
Hugging Face's forward (head on every position) against `MaskedLanguageModel.masked_logits`
(head on the masked positions only), alternating, median over `--steps` after one warm-up each.

    python benchmarks/mlm_head.py --arch distilbert
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModelForMaskedLM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import save_random_model  # noqa: E402

from lightning_modules.masked_lm import MaskedLanguageModel  # noqa: E402

MASK_ID = 103  # [MASK] in the uncased BERT vocabulary


def masked_batch(batch_size: int, length: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30522, (batch_size, length), generator=generator)
    chosen = torch.rand(batch_size, length, generator=generator) < 0.15
    labels = torch.where(chosen, ids, -100)
    return {"input_ids": ids.masked_fill(chosen, MASK_ID).to(device), "labels": labels.to(device)}


def seconds(loss_fn) -> float:
    start = time.perf_counter()
    loss_fn().backward()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="distilbert", choices=["distilbert", "bert-base", "tiny"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--block_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        save_random_model(args.arch, Path(tmp), AutoModelForMaskedLM)
        module = MaskedLanguageModel(tmp).to(device)
    batch = masked_batch(args.batch_size, args.block_size, device)

    def full() -> torch.Tensor:
        return module.model(**batch).loss

    def masked_only() -> torch.Tensor:
        return F.cross_entropy(*module.masked_logits(batch))

    module.model.eval()  # without dropout both give the same loss, or the timing means nothing
    torch.testing.assert_close(masked_only(), full(), rtol=1e-4, atol=1e-4)
    module.model.train()
    times = {"full": [], "masked_only": []}
    for step in range(args.steps + 1):
        for name, fn in (("full", full), ("masked_only", masked_only)):
            took = seconds(fn)
            module.model.zero_grad(set_to_none=True)
            if step:  # the first is warm-up
                times[name].append(took)
    full_ms, masked_ms = (1000 * statistics.median(times[k]) for k in ("full", "masked_only"))
    print(f"\n{args.arch} (random weights) MLM, batch {args.batch_size} x {args.block_size} tokens, "
          f"15% masked, forward + backward, median of {args.steps} on {device}\n")
    print("| vocabulary head on | ms per step |\n|---|---|")
    print(f"| every position (Hugging Face forward) | {full_ms:.1f} |")
    print(f"| masked positions only (this project) | {masked_ms:.1f} |")
    print(f"\nsaved: {100 * (1 - masked_ms / full_ms):.1f}% of the step")
    out = Path(args.out or f"benchmarks/results/mlm_head-{args.arch}-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**vars(args), "device": str(device), "full_ms": full_ms,
                               "masked_only_ms": masked_ms, "runs_s": times}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
