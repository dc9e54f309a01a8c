"""The same figures on any x86-64 CPU: torch's CPU kernels pinned to ones every CPU runs.

Why. torch picks its CPU kernels by the CPU it runs on, and kernels built for wider
vector registers add up floats in another order, so the same seed trains other weights
on another CPU: ``make run`` (seed 0, ``default``) said "+301 [245, 358]" on an AMD EPYC
with AVX-512 and "+318 [266, 371]" on other x86-64 machines. Two choices differ:

- ATen's own kernels (activations, softmax, sums, the optimiser's updates):
  ``DEFAULT``, ``AVX2`` or ``AVX512``, by the CPU. ``ATEN_CPU_CAPABILITY=default`` takes
  the baseline x86-64 ones, which every x86-64 CPU runs.
- MKL's matrix products (the policy's linear layers): its code path, by the CPU's maker
  and vector width. ``MKL_CBWR=COMPATIBLE`` is MKL's conditional numerical
  reproducibility branch that gives the same results on Intel and compatible (AMD)
  processors (the AMD EPYC refuses its AVX2 and AVX-512 branches).

And one in numpy: its OpenBLAS picks its kernels by the CPU too (``SkylakeX`` here,
``Haswell`` on an AVX2 Intel CPU), which moved the evaluation's figures in their last
digits (``316.86`` for ``316.8599999999999``). ``OPENBLAS_CORETYPE=Prescott`` takes its
SSE3 kernels (every x86-64 CPU but the first Opterons), read when numpy is imported.

Measured on the AMD EPYC (``experiments/benchmarks/RESULTS.md``, "Reproducibility across
machines"): each of torch's two changes the trained weights, and with all three pinned,
forcing another ATen capability, MKL branch, OpenBLAS kernel, numba target CPU, numpy SIMD
level, glibc's libm variants or thread counts from outside changes nothing. The simulator
(numba, compiled without fastmath, so LLVM neither fuses multiply-adds nor reorders
sums), numpy's own SIMD and oneDNN (unused by these networks) need no pin. torch's own threads
are already pinned by ``training.torch_threads`` (1): another value trains other weights.

The variables are read once: when torch runs its first operation (ATen), its first
matrix product (MKL), and when numpy is imported (OpenBLAS); so the apps that train
(``experiments.main``, ``experiments.train``) set them first thing, before any other
import::

    os.environ.update(CPU_KERNELS)

They overwrite a value set outside: the point is the same figures everywhere. What
the kernels were is tagged on the MLflow run (:data:`CPU_KERNELS_TAG`).

Cost. The baseline kernels are slower than the host's widest ones: on the AMD EPYC
(AVX-512), MaskablePPO's ``learn`` (the ``make run`` agent, 64 shoppers) took 7.7 CPU
seconds per 131k timesteps instead of 6.0 and 6.4 (+20 to 28%), so about 45 CPU seconds
more over ``make run``'s 4M timesteps, some 10% of the whole run (468 CPU seconds pinned);
the simulator, the baselines and the oracle do not use torch and cost the same.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

CPU_KERNELS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OPENBLAS_CORETYPE": "Prescott",
}
"""The environment that pins the CPU kernels; set before torch runs an operation and
before numpy is imported."""

CPU_KERNELS_TAG = "cpu_kernels"
"""MLflow tag of a run: the kernels it ran with (:func:`cpu_kernels`)."""

PINNED = "aten=DEFAULT mkl=COMPATIBLE"
"""What :func:`cpu_kernels` says when the pin is in effect."""

# MKL's branch numbers (mkl_cbwr.h), for :func:`mkl_branch`
_MKL_BRANCHES = {
    0: "OFF",
    1: "OFF",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    12: "AVX512",
    14: "AVX512_E1",
}


def mkl_branch() -> str:
    """MKL's reproducibility branch in this process (``OFF``: by the CPU), or ``unknown``
    when torch is not built with MKL or does not export MKL's query."""
    import torch

    if not torch.backends.mkl.is_available():
        return "unknown"
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return "unknown"
    branch = int(get(ctypes.c_int(1)))  # MKL_CBWR_BRANCH
    return _MKL_BRANCHES.get(branch, str(branch))


def cpu_kernels() -> str:
    """The CPU kernels torch runs in this process, e.g. ``aten=DEFAULT mkl=COMPATIBLE``
    (:data:`PINNED`); asking fixes ATen's choice if no operation has yet."""
    import torch

    return f"aten={torch.backends.cpu.get_cpu_capability()} mkl={mkl_branch()}"


def pinned() -> bool:
    """Whether torch runs the pinned kernels (:data:`CPU_KERNELS`) in this process."""
    wanted = all(os.environ.get(name) == value for name, value in CPU_KERNELS.items())
    return wanted and cpu_kernels() in (PINNED, "aten=DEFAULT mkl=unknown")
