"""How many threads the numeric libraries (BLAS, OpenMP, torch, FAISS) use in this process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

# (module, getter, setter) of the libraries that keep a thread count of their own beside threadpoolctl's.
_OWN_COUNTS = (("torch", "get_num_threads", "set_num_threads"), ("faiss", "omp_get_max_threads", "omp_set_num_threads"))


def set_library_threads(n: int) -> None:
    """Every numeric library on `n` threads from now on: a forked For You worker takes 1, so two workers on two
    cores run two threads, not two thread pools each."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    for name, _, setter in _OWN_COUNTS:
        module = sys.modules.get(name)
        if module is not None:
            getattr(module, setter)(n)


@contextmanager
def library_threads(n: int) -> Iterator[None]:
    """Every numeric library on `n` threads inside the block, as before after it. For work spread over Python
    threads: one library pool per thread on a 2-core machine, not one each that spin-wait against each other.
    The results may depend on it: OpenBLAS's sgemm gave other bits on 1 and 2 threads on an AMD EPYC (Haswell
    kernels; not on the Intel machine where this was first written), so code that must give the same bits
    however it runs takes one thread everywhere."""
    from threadpoolctl import threadpool_limits

    saved = []
    with threadpool_limits(n):
        for name, getter, setter in _OWN_COUNTS:
            module = sys.modules.get(name)
            if module is not None:
                saved.append((getattr(module, setter), getattr(module, getter)()))
                getattr(module, setter)(n)
        try:
            yield
        finally:
            for set_count, count in saved:
                set_count(count)
