"""How many CPU threads prediction runs on, and the three places that number goes: PyTorch's
operators, ONNX Runtime's (which reads no environment variable: its session options take it) and
the tokenizer's pool (`tokenizers` sizes its Rust pool from RAYON_NUM_THREADS when the pool
starts)."""

import os


def cpu_threads(threads: int | None) -> int:
    """`threads`, else OMP_NUM_THREADS where it is set, else every core this process may run on."""
    if threads:
        return threads
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def tokenizer_threads(threads: int) -> None:
    """The tokenizer's pool sized to `threads` (one thread: no pool). Read once, when the pool first
    starts: set it before the first batch of texts is tokenized in the process."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
