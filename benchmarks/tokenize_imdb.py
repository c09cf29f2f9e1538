"""How long the data pipeline takes on full IMDB (train + test, 50k reviews): the first run
tokenizes and caches, the second loads the cache. Prints a table and writes JSON.

    python benchmarks/tokenize_imdb.py --data_dir ../shared/data/imdb --backbone minilm
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from core.errors import exit_on_user_error  # noqa: E402
from datamodules.imdb import IMDBDataModule  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None,
                        help="local IMDB copy (split files or aclImdb folders); default: the hub")
    parser.add_argument("--backbone", default="minilm", help="whose tokenizer (BERT uncased WordPiece)")
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--out", default="benchmarks/results/tokenize_imdb.json")
    args = parser.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="tokenize-bench-"))
    try:
        def module() -> IMDBDataModule:
            return IMDBDataModule(tokenizer=args.backbone, data_dir=args.data_dir,
                                  max_length=args.max_length, num_workers=0, cache_dir=str(cache))

        cold = module()
        cold_s = timed(cold.prepare_data)
        warm = module()
        warm_s = timed(lambda: (warm.prepare_data(), warm.setup("fit")))
        rows = sum(len(split) for split in warm.splits.values())
        tokens = sum(sum(map(len, warm.splits[s]["input_ids"])) for s in warm.splits)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    result = {
        "reviews": rows, "tokens": tokens, "max_length": args.max_length,
        "first_run_s": round(cold_s, 2), "cached_reload_s": round(warm_s, 2),
        "reviews_per_s": round(rows / cold_s), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    print("| step | seconds |\n|---|---|")
    print(f"| read, split, tokenize and cache {rows:,} reviews ({tokens:,} tokens) | {cold_s:.1f} |")
    print(f"| load the cache (memory-mapped) | {warm_s:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    exit_on_user_error(main)
