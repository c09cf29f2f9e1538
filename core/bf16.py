"""Whether this CPU multiplies bfloat16 matrices faster than float32, measured on it once per
process. oneDNN's own answer (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) is a CPU flag: it says
yes on an Intel Xeon with AVX-512 but neither AVX-512 BF16 nor AMX (Ice Lake), where a 256 x 1024
by 1024 x 1024 product took 9.4 ms in bf16 and 3.0 ms in fp32 (2 threads), and bf16-mixed training
ran several times slower than fp32. Where the CPU computes bf16 natively (AMX, AVX-512 BF16) the
same product runs faster in bf16, and the measurement says so."""

import functools
import time

import torch


def shortest(run, repeats: int = 2) -> float:
    """The shortest of `repeats` timed calls of `run`, after one that warms it up."""
    run()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


@functools.cache
def cpu_bf16_faster() -> bool:
    """Whether a bf16 matrix product beats fp32's on this CPU (its operands already in bf16)."""
    a, b = torch.randn(256, 1024), torch.randn(1024, 1024)
    a16, b16 = a.bfloat16(), b.bfloat16()
    with torch.inference_mode():
        return shortest(lambda: a16 @ b16, 3) < shortest(lambda: a @ b, 3)
