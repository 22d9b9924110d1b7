"""Process-wide settings of the bitwise engine, applied before numba is imported.

Importing ``frb.bitwise`` runs :func:`configure` once. Each setting is left alone when the user
already chose it through numba's own environment variable:

* ``NUMBA_CACHE_DIR``: numba caches compiled kernels next to their source; where the package
  directory is read-only (a system install, a container image) the cache goes to
  ``$XDG_CACHE_HOME/frb-sr/numba`` (default ``~/.cache/frb-sr/numba``), or to the temporary
  directory if that cannot be created either.
* ``NUMBA_THREADING_LAYER``: ``omp`` when the system libgomp is found, else ``tbb`` when the
  ``tbb`` package is installed. numba's fallback, ``workqueue``, aborts when two Python threads
  launch parallel kernels at once; ``frb.bitwise.kernels.run`` then serialises the calls.
* ``NUMBA_CPU_FEATURES``: on AVX-512 hosts the host features plus ``-prefer-256-bit``, so that
  LLVM may use 512-bit vectors (15-20 % faster kernels measured on a Xeon; on this project's
  AMD EPYC (Zen 4) LLVM picks 512-bit popcounts either way).

* ``FRB_ISA=avx2`` (this project's variable): compile every kernel for an AVX2-only x86 CPU
  (LLVM CPU ``haswell`` and its features, no AVX-512) whatever the host, so that the code users
  without AVX-512 run is tested and measured on an AVX-512 development host. It sets
  ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` and takes the popcount strategy of such a CPU; the
  numba cache keys compiled code by CPU name and features, so both targets share one cache.
  ``FRB_ISA=host`` (the default) compiles for the host.

The popcount strategy is chosen here too (``FRB_POPCOUNT=native|csa`` overrides it):
``native`` sums one LLVM ``ctpop`` per XOR word (a single VPOPCNTQ per lane with AVX-512
VPOPCNTDQ, and the right choice on non-x86 hosts); ``csa`` first reduces the nine XOR words of
a 3x3 tap with carry-save adders to four bit-sliced counters (ones, twos, fours, eights), so
only four popcounts are needed where x86 lacks a vector popcount (AVX2 only): LLVM emulates
each with nibble-table shuffles, and this cuts them from 18 to 8 per nine words (Intel runs
shuffles on one port; AVX2 code emulated on Zen 4 ran at parity, ~20 % faster reported on AVX2
hosts).
"""
from __future__ import annotations

import ctypes.util
import importlib.util
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: FRB_ISA targets: LLVM CPU name and features (a non-empty feature string, or numba adds the host's).
ISA_TARGETS = {
    "avx2": ("haswell", "+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+popcnt,+sse4.1,+sse4.2,+ssse3"),
}
#: The environment that holds torch (oneDNN and ATen kernels) to the same ISA, so that a benchmark for
#: an FRB_ISA target compares like with like (torch reads it when it is first imported).
TORCH_ISA_ENV = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}


@dataclass(frozen=True)
class EngineSettings:
    """What :func:`configure` decided (reported by ``python -m frb bench``)."""

    popcount: str
    isa: str  # "host" or an ISA_TARGETS key
    cache_dir: str
    threading_layer: str
    cpu_features: str
    avx512: bool
    vpopcntdq: bool


def _isa() -> str:
    isa = os.environ.get("FRB_ISA", "host") or "host"
    if isa != "host" and isa not in ISA_TARGETS:
        raise ValueError(f"FRB_ISA must be 'host' or one of {sorted(ISA_TARGETS)}, got {isa!r}")
    return isa


def _host_features() -> dict[str, bool]:
    """LLVM's view of the CPU features kernels are compiled for: the host's, or the FRB_ISA target's."""
    isa = _isa()
    if isa != "host":
        return {name[1:]: name[0] == "+" for name in ISA_TARGETS[isa][1].split(",")}
    from llvmlite import binding

    try:
        return dict(binding.get_host_cpu_features())
    except RuntimeError:
        return {}


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _cache_dir() -> str:
    """The directory numba caches to: in-tree when writable, else a per-user cache directory."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    in_tree = PACKAGE_DIR / "__pycache__"
    if os.access(in_tree if in_tree.is_dir() else PACKAGE_DIR, os.W_OK | os.X_OK):
        return str(in_tree)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    for candidate in (Path(xdg) / "frb-sr" / "numba", Path(tempfile.gettempdir()) / "frb-sr-numba"):
        if _writable_dir(candidate):
            os.environ["NUMBA_CACHE_DIR"] = str(candidate)
            return str(candidate)
    return str(in_tree)


def _threading_layer() -> str:
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return os.environ["NUMBA_THREADING_LAYER"]
    if ctypes.util.find_library("gomp"):
        layer = "omp"
    elif importlib.util.find_spec("tbb") is not None:
        layer = "tbb"
    else:
        return "default"
    os.environ["NUMBA_THREADING_LAYER"] = layer
    return layer


def _cpu_features(features: dict[str, bool]) -> str:
    isa = _isa()
    if isa != "host":
        os.environ["NUMBA_CPU_NAME"], os.environ["NUMBA_CPU_FEATURES"] = ISA_TARGETS[isa]
        return os.environ["NUMBA_CPU_FEATURES"]
    if os.environ.get("NUMBA_CPU_FEATURES"):
        return os.environ["NUMBA_CPU_FEATURES"]
    if not features.get("avx512f"):
        return ""
    flat = ",".join(("+" if on else "-") + name for name, on in sorted(features.items()))
    os.environ["NUMBA_CPU_FEATURES"] = f"{flat},-prefer-256-bit"
    return os.environ["NUMBA_CPU_FEATURES"]


def _popcount(features: dict[str, bool]) -> str:
    forced = os.environ.get("FRB_POPCOUNT", "")
    if forced:
        if forced not in ("native", "csa"):
            raise ValueError(f"FRB_POPCOUNT must be 'native' or 'csa', got {forced!r}")
        return forced
    is_x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    return "csa" if is_x86 and not features.get("avx512vpopcntdq") else "native"


def configure() -> EngineSettings:
    """Choose cache directory, threading layer, CPU features and popcount strategy.

    Environment variables only take effect before numba is imported; if it already is, the same
    values are written into ``numba.core.config`` (read when the first kernel compiles).
    """
    features = _host_features()
    settings = EngineSettings(
        popcount=_popcount(features),
        isa=_isa(),
        cache_dir=_cache_dir(),
        threading_layer=_threading_layer(),
        cpu_features=_cpu_features(features),
        avx512=bool(features.get("avx512f")),
        vpopcntdq=bool(features.get("avx512vpopcntdq")),
    )
    if "numba" in sys.modules:
        from numba.core import config as numba_config

        if os.environ.get("NUMBA_CACHE_DIR"):
            numba_config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
        if settings.threading_layer != "default":
            numba_config.THREADING_LAYER = settings.threading_layer
        if settings.cpu_features:
            numba_config.CPU_FEATURES = settings.cpu_features
        if settings.isa != "host":
            numba_config.CPU_NAME = os.environ["NUMBA_CPU_NAME"]
    return settings


SETTINGS = configure()
