"""How long the data pipeline takes on full IMDB (train + test, 50k reviews): the first run
tokenizes and caches, the second loads the cache. Prints a table and writes JSON.

    python benchmarks/tokenize_imdb.py --data_dir ../shared/data/imdb --backbone minilm
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # tokenizing is what is timed

import shutil
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, Timer, parser, table, write_report
from core.errors import exit_on_user_error
from datamodules.imdb import IMDBDataModule


def main() -> None:
    options = parser(__doc__, str(RESULTS / "tokenize_imdb.json"), data_dir=None, max_length=512)
    options.add_argument("--backbone", default="minilm", help="whose tokenizer")
    args = options.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="tokenize-bench-"))
    try:
        def module() -> IMDBDataModule:
            return IMDBDataModule(tokenizer=args.backbone, data_dir=args.data_dir,
                                  max_length=args.max_length, num_workers=0, cache_dir=str(cache))

        cold, warm = module(), module()
        with Timer() as cold_run:
            cold.prepare_data()
        with Timer() as warm_run:
            warm.prepare_data()
            warm.setup("fit")
        cold_s, warm_s = cold_run.seconds, warm_run.seconds
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
