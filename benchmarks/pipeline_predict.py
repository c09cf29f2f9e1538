"""The baseline of benchmarks/inference.py, as a process of its own: `transformers.pipeline(
"text-classification")` over every text of a JSON Lines file, batch 32, texts cut at `--max_length`;
writes each text's probabilities (in the model's label order) and its own seconds as JSON.

    python benchmarks/pipeline_predict.py MODEL texts.jsonl out.json --max_length 128 --threads 2
"""

import argparse
import json
import time

import torch
from transformers import pipeline


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("model")
    options.add_argument("input")
    options.add_argument("output")
    options.add_argument("--max_length", type=int, required=True)
    options.add_argument("--threads", type=int, required=True)
    options.add_argument("--batch_size", type=int, default=32)
    options.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = options.parse_args()
    torch.set_num_threads(args.threads)
    texts = [json.loads(line)["text"] for line in open(args.input, encoding="utf-8")]
    classify = pipeline("text-classification", model=args.model, device="cpu", top_k=None,
                        dtype=getattr(torch, args.dtype))
    labels = list(classify.model.config.id2label.values())
    started = time.perf_counter()
    found = classify(texts, batch_size=args.batch_size, truncation=True, max_length=args.max_length)
    seconds = time.perf_counter() - started
    probs = [[{s["label"]: s["score"] for s in text}[name] for name in labels] for text in found]
    with open(args.output, "w") as f:
        json.dump({"seconds": seconds, "probs": probs}, f)


if __name__ == "__main__":
    main()
