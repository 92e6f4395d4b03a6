"""Compiled CPU kernels for GRU4Rec's training hot spots; the C++ is ``seqrec/csrc/``.

``csrc/fused.cpp`` holds ``adagrad_rows_`` / ``adagrad_dense_`` (Adagrad(+momentum) on the
touched rows of an item table / on whole dense tensors, one in-place pass, optionally
writing a bfloat16 copy of the new values), ``bpr_max_`` and ``cross_entropy_`` (GRU4Rec's
losses and their gradients in closed form, a row at a time), ``gather_rows_``
(``index_select`` along dim 0 with prefetching) and ``dropout_noise_`` (counter-based
dropout noise). Each has a torch formulation the tests compare it with: results agree to
float rounding, and :func:`dropout_noise` draws bit for bit the same noise either way.

Build: the source is compiled with ``torch.utils.cpp_extension.load`` (a C++ compiler,
``$CXX`` or ``c++``, and ninja: the ``ninja`` package is a dependency) into torch's
extension cache (``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``) under a name
that hashes the source, the flags, the torch and Python versions and the CPU: once per
machine; later processes load the library directly. ``seqrec build-kernels`` (which
``make setup`` runs) builds ahead of use; otherwise the first :func:`kernels` call does,
with a log line (~1 min). An ``flock`` serialises concurrent builders.

:func:`kernels` returns the compiled module, or ``None`` when the kernels are switched
off (``SEQREC_FUSED=0``) or the build failed (a warning, once): callers then take their
torch formulation, which is also what runs for tensors that are not contiguous float32
CPU tensors (CUDA). :func:`compute_path` names the path a training run takes.

Rounding, threads, bfloat16 and the measurements behind each kernel:
``benchmarks/PROFILE.md``, section 11 ("The fused CPU kernels: design notes").
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from seqrec.errors import SeqrecError

__all__ = [
    "CUDA",
    "ENV_SWITCH",
    "FUSED_CPU",
    "SOURCES",
    "TORCH_FALLBACK",
    "BuildInfo",
    "KernelBuildError",
    "build",
    "compute_path",
    "cpu_float_contiguous",
    "dropout_noise",
    "kernels",
]

log = logging.getLogger("seqrec.fused")

ENV_SWITCH = "SEQREC_FUSED"  # "0" / "false" / "off": never build or use the kernels

SOURCES = (Path(__file__).resolve().parent.parent / "csrc" / "fused.cpp",)

# the three training paths, as recorded in a model's meta_ and the training summary
FUSED_CPU = "fused-cpu kernels"
TORCH_FALLBACK = "torch fallback"
CUDA = "cuda"

# -ffp-contract=off: no compiler-made FMAs (the source spells out every fused operation);
# -fno-math-errno: lets sqrt vectorise; -march=native: the library is built per machine
# (its cache name includes the CPU's identity, so a shared cache never mixes CPUs; why
# not a portable x86-64 level: benchmarks/PROFILE.md section 11).
# -fopenmp: at::parallel_for splits the loops over torch's own OpenMP threads (the
# library's libgomp.so.1 dependency resolves to the copy torch has already loaded).
# Where the compiler has no OpenMP (e.g. Apple clang) the library is built without it:
# the same kernels on one thread.
# Tuples, and fresh lists for every build: torch appends its own link flags to the list
# it is given, and a mutated module-level list changed the cache name after the first
# build, so every later load in the process compiled again (issue 15).
_CFLAGS = ("-O3", "-ffp-contract=off", "-fno-math-errno", "-march=native")
_OPENMP = ("-fopenmp",)

_lock = threading.Lock()
_module: ModuleType | None = None
_tried = False
_builds: list[str] = []  # directories this process compiled into (tests count them)


class KernelBuildError(SeqrecError):
    """The kernels cannot be built here (no compiler, no ninja, a compile error)."""


@dataclass(frozen=True)
class BuildInfo:
    """What :func:`build` did: the library's path, whether it compiled it now (False: it
    was already in the cache), how long that took, and whether it has OpenMP threads."""

    library: str
    compiled: bool
    seconds: float
    openmp: bool


def _cflags(openmp: bool) -> list[str]:
    return [*_CFLAGS, *(_OPENMP if openmp else ())]


def _ldflags(openmp: bool) -> list[str]:
    return list(_OPENMP) if openmp else []


def _source_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)


def _cpu_identity() -> str:
    """Model name and feature flags of this CPU (what -march=native compiles for)."""
    keep = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part") and line not in keep:
                    keep.append(line)
                if not line.strip() and keep:
                    break  # the first processor's block is enough
    except OSError:
        pass
    return "".join(keep) or f"{platform.machine()} {platform.processor()}"


def _ext_name(openmp: bool = True) -> str:
    """The cache name: a hash of the source, the flags, the torch and Python versions and
    the CPU's model and flags (-march=native: a shared cache never mixes CPUs)."""
    key = "\n".join(
        [
            _source_text(),
            " ".join(_cflags(openmp) + _ldflags(openmp)),
            torch.__version__,
            sys.version.split()[0],
            _cpu_identity(),
        ]
    )
    return "seqrec_fused_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _build_dir(name: str) -> str:
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    return os.path.join(root, name)


def _import(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextmanager
def _build_lock(directory: str) -> Iterator[None]:
    """Exclusive right to build into ``directory`` among seqrec processes.

    An ``flock`` on ``seqrec-build.lock``: the kernel releases it when its holder exits,
    however it exits. torch's own build lock is a plain file (``lock``) that a build
    killed mid-way (Ctrl-C, a timeout, the OOM killer) leaves behind, after which every
    later build into that directory waits forever. Holding this lock, a ``lock`` file
    found in the directory can only be such a leftover, and is removed. Without
    ``fcntl`` (Windows) there is no lock and no removal.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(os.path.join(directory, "seqrec-build.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process that is building the kernels in %s", directory)
            fcntl.flock(fd, fcntl.LOCK_EX)
        stale = os.path.join(directory, "lock")
        if os.path.exists(stale):
            log.warning("removing a stale build lock left by an interrupted build: %s", stale)
            os.remove(stale)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def _ninja_on_path() -> Iterator[None]:
    """torch runs ``ninja`` from PATH; the ``ninja`` package's binary sits in the
    environment's ``bin``, which is not on PATH when Python is run by its full path.
    Put it there for the build only."""
    if shutil.which("ninja") is not None:
        yield
        return
    try:
        import ninja

        bin_dir = str(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        yield  # torch reports the missing ninja
        return
    old = os.environ.get("PATH")
    os.environ["PATH"] = bin_dir + (os.pathsep + old if old else "")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old


def _load(openmp: bool = True) -> ModuleType:
    name = _ext_name(openmp)
    directory = _build_dir(name)
    lib = os.path.join(directory, name + ".so")
    ready = os.path.join(directory, "seqrec-ready")  # written once the library is complete
    if os.path.exists(ready) and os.path.exists(lib):
        return _import(name, lib)
    from torch.utils import cpp_extension

    os.makedirs(directory, exist_ok=True)
    with _build_lock(directory):
        if os.path.exists(ready) and os.path.exists(lib):  # built while we waited
            return _import(name, lib)
        log.warning(
            "building seqrec's CPU kernels once for this machine (~1 min) into %s "
            "(`seqrec build-kernels` does this ahead of time)",
            directory,
        )
        t0 = time.perf_counter()
        with _ninja_on_path():
            mod = cpp_extension.load(
                name=name,
                sources=[str(p) for p in SOURCES],
                extra_cflags=_cflags(openmp),  # fresh lists: torch appends to them
                extra_ldflags=_ldflags(openmp),
                build_directory=directory,
                with_cuda=False,
                verbose=False,
            )
        _builds.append(directory)
        log.info("built seqrec's CPU kernels in %.0f s", time.perf_counter() - t0)
        tmp = f"{ready}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(name + "\n")
        os.replace(tmp, ready)
    return mod


def _load_any() -> tuple[ModuleType, bool]:
    """The kernels with OpenMP threads, or without where the compiler has no OpenMP."""
    try:
        return _load(openmp=True), True
    except Exception as exc:
        log.info("fused kernels: no OpenMP build (%s); trying without", exc)
        return _load(openmp=False), False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _switched_off() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")


def kernels() -> ModuleType | None:
    """The compiled kernels, or None (switched off, or the build failed: logged once).

    Loads the cached build on the first call, or builds it (see the module docstring);
    thread-safe.
    """
    global _module, _tried
    if _tried:
        return _module
    with _lock:
        if not _tried:
            if _switched_off():
                log.debug("fused kernels switched off (%s=0): pure-torch updates", ENV_SWITCH)
            else:
                try:
                    _module = _load_any()[0]
                except Exception as exc:  # no compiler, no ninja, unsupported flags, ...
                    log.warning(
                        "could not build seqrec's fused CPU kernels (%s); training uses the "
                        "slower pure-torch path",
                        _first_line(exc),
                    )
                    _module = None
            _tried = True
    return _module


def build() -> BuildInfo:
    """Build the kernels for this machine now (or find them in the cache), whatever
    ``SEQREC_FUSED`` says; raises :class:`KernelBuildError` with a one-line reason."""
    global _module, _tried
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise KernelBuildError(
            f"no C++ compiler ({cxx!r} not found; install g++ or set CXX): training will "
            "use the slower pure-torch path"
        )
    before = len(_builds)
    t0 = time.perf_counter()
    try:
        mod, openmp = _load_any()
    except Exception as exc:
        raise KernelBuildError(f"building the kernels failed: {_first_line(exc)}") from exc
    seconds = time.perf_counter() - t0
    if not _switched_off():  # switched off, kernels() keeps saying None in this process
        with _lock:
            _module, _tried = mod, True
    name = _ext_name(openmp)
    library = os.path.join(_build_dir(name), name + ".so")
    return BuildInfo(library, len(_builds) > before, seconds, openmp)


def compute_path(device: torch.device | str) -> str:
    """Which implementation a training run on ``device`` takes: :data:`FUSED_CPU`,
    :data:`TORCH_FALLBACK` (CPU without the kernels) or the device type (``"cuda"``)."""
    kind = torch.device(device).type
    if kind != "cpu":
        return kind
    return FUSED_CPU if kernels() is not None else TORCH_FALLBACK


def cpu_float_contiguous(
    *tensors: torch.Tensor, dtypes: tuple[torch.dtype, ...] = (torch.float32,)
) -> bool:
    """True if every tensor is a contiguous CPU tensor of one of ``dtypes`` (float32 by
    default: what the kernels take; the dense Adagrad kernel also reads bfloat16
    gradients)."""
    return all(t.device.type == "cpu" and t.dtype in dtypes and t.is_contiguous() for t in tensors)


# splitmix64's constants as int64 (two's complement): torch has no uint64 arithmetic
def _i64(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _i64(0x9E3779B97F4A7C15)
_MIX1 = _i64(0xBF58476D1CE4E5B9)
_MIX2 = _i64(0x94D049BB133111EB)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 values read as uint64 (torch's ``>>`` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def dropout_noise(noise: torch.Tensor, seed: int, keep: float) -> torch.Tensor:
    """Fill ``noise`` with dropout noise for keep-probability ``keep``: ``1 / keep`` where
    an element is kept, else 0; returns it. Element ``i`` (row-major) is kept when the top
    24 bits of splitmix64(seed + (i + 1) * golden) fall below ``keep * 2^24``: a
    counter-based generator (any split over threads gives the same noise; one 64-bit seed
    reproduces it). The kernel (``dropout_noise_``) and this torch twin (int64 ops with
    wrapping multiplies) give the same noise bit for bit."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    ext = kernels() if cpu_float_contiguous(noise) else None
    if ext is not None:
        ext.dropout_noise_(noise, seed, keep)
        return noise
    return _dropout_noise_torch(noise, seed, keep)


def _dropout_noise_torch(noise: torch.Tensor, seed: int, keep: float) -> torch.Tensor:
    """The torch twin of the kernel ``dropout_noise_`` (see :func:`dropout_noise`)."""
    z = torch.arange(1, noise.numel() + 1, dtype=torch.int64, device=noise.device)
    z = z * _GOLDEN + _i64(seed % (1 << 64))  # wraps modulo 2^64, as the C++ uint64 does
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    z = z ^ _shr(z, 31)
    kept = _shr(z, 40) < int(keep * 16777216.0 + 0.5)  # the kernel's threshold, keep * 2^24
    one = torch.ones((), dtype=noise.dtype, device=noise.device)
    scale = one / torch.tensor(keep, dtype=noise.dtype, device=noise.device)  # 1.0f / keep
    noise.copy_(torch.where(kept, scale, torch.zeros_like(scale)).view(noise.shape))
    return noise


def _reset() -> None:
    """Forget the loaded module so the next :func:`kernels` call decides again (tests)."""
    global _module, _tried
    with _lock:
        _module, _tried = None, False
