"""How long the data pipeline takes on full IMDB (train + test, 50k reviews): the first run
tokenizes and caches, the second loads the cache. Prints a table and writes JSON.

    python benchmarks/tokenize_imdb.py --data_dir ../shared/data/imdb --backbone minilm
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # tokenizing is what is timed

import shutil
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, parser, table, timed, write_report
from core.errors import exit_on_user_error
from datamodules.imdb import IMDBDataModule


def main() -> None:
    options = parser(__doc__, str(RESULTS / "tokenize_imdb.json"))
    options.add_argument("--data_dir", default=None,
                         help="local IMDB copy (split files or aclImdb folders); default: the hub")
    options.add_argument("--backbone", default="minilm", help="whose tokenizer")
    options.add_argument("--max_length", type=int, default=512)
    args = options.parse_args()

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

    print(table(["step", "seconds"], [
        [f"read, split, tokenize and cache {rows:,} reviews ({tokens:,} tokens)", f"{cold_s:.1f}"],
        ["load the cache (memory-mapped)", f"{warm_s:.2f}"]]))
    write_report(args.out, {"reviews": rows, "tokens": tokens, "max_length": args.max_length,
                            "first_run_s": round(cold_s, 2), "cached_reload_s": round(warm_s, 2),
                            "reviews_per_s": round(rows / cold_s)})


if __name__ == "__main__":
    exit_on_user_error(main)
