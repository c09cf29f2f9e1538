"""What computing the MLM vocabulary head only at masked positions saves, per training step.

Times forward + backward of a random-weight MLM on random blocks with 15% of positions masked:
Hugging Face's forward (head on every position) against `MaskedLanguageModel.masked_logits`
(head on the masked positions only), alternating, median over `--steps` after one warm-up each.

    python benchmarks/mlm_head.py --arch distilbert
"""

from pathlib import Path
from tempfile import TemporaryDirectory

import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, AutoTokenizer

from benchmarks.common import RESULTS, Timer, device, median_ms, parser, table, write_report
from benchmarks.random_models import random_token_ids, save_random_model
from lightning_modules.masked_lm import MaskedLanguageModel


def masked_batch(tokenizer, batch_size: int, length: int, seed: int, where: torch.device) -> dict:
    """Random ordinary tokens, 15% of them replaced by the tokenizer's mask token and labelled."""
    generator = torch.Generator().manual_seed(seed)
    ids = random_token_ids(tokenizer, (batch_size, length), generator)
    chosen = torch.rand(batch_size, length, generator=generator) < 0.15
    labels = torch.where(chosen, ids, -100)
    return {"input_ids": ids.masked_fill(chosen, tokenizer.mask_token_id).to(where),
            "labels": labels.to(where)}


def main() -> None:
    options = parser(__doc__, None, batch_size=8, steps=8, seed=0)
    options.add_argument("--arch", default="distilbert", choices=["distilbert", "bert-base", "tiny"])
    options.add_argument("--block_size", type=int, default=128, help="tokens per row")
    args = options.parse_args()
    where = device()

    with TemporaryDirectory() as tmp:
        save_random_model(args.arch, Path(tmp), AutoModelForMaskedLM, seed=args.seed)
        module = MaskedLanguageModel(tmp).to(where)
        batch = masked_batch(AutoTokenizer.from_pretrained(tmp), args.batch_size, args.block_size, args.seed,
                             where)

    def full() -> torch.Tensor:
        return module.model(**batch).loss

    def masked_only() -> torch.Tensor:
        return F.cross_entropy(*module.masked_logits(batch))

    module.model.eval()  # without dropout both give the same loss, or the timing means nothing
    torch.testing.assert_close(masked_only(), full(), rtol=1e-4, atol=1e-4)
    module.model.train()
    times = {"full": [], "masked_only": []}
    for step in range(args.steps + 1):
        for name, loss in (("full", full), ("masked_only", masked_only)):
            with Timer(where) as timer:
                loss().backward()
            module.model.zero_grad(set_to_none=True)
            if step:  # the first is warm-up
                times[name].append(timer.seconds)
    full_ms, masked_ms = median_ms(times["full"]), median_ms(times["masked_only"])
    print(f"\n{args.arch} (random weights) MLM, batch {args.batch_size} x {args.block_size} tokens, "
          f"15% masked, forward + backward, median of {args.steps} on {where}\n")
    print(table(["vocabulary head on", "ms per step"], [
        ["every position (Hugging Face forward)", f"{full_ms:.1f}"],
        ["masked positions only (this project)", f"{masked_ms:.1f}"]]))
    print(f"\nsaved: {100 * (1 - masked_ms / full_ms):.1f}% of the step")
    write_report(args.out or RESULTS / f"mlm_head-{args.arch}-{where.type}.json",
                 {**vars(args), "full_ms": full_ms, "masked_only_ms": masked_ms, "runs_s": times})


if __name__ == "__main__":
    main()
