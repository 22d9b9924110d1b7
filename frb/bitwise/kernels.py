"""numba kernels of the bitwise engine: sign packing, binary KxK convolution, binary GEMM.

Bit convention (``frb.binarize``): bit 0 is +1, bit 1 is -1, so for K valid bits

    dot(a, w) = K - 2 * popcount(a XOR w).

Channels beyond the real count (the tail of the last 64-bit word) are 0 in both the inputs and
the weights, so their XOR is 0 and they never count. Borders of a convolution input hold 0
words: +1, the value binary layers pad with.

Layouts: activations channels-last, ``bits[n, y, x, word]`` with a ``pad``-pixel border;
weights ``w[base, tap, word, out]`` so the innermost loop over output channels is contiguous and
vectorises (tap = dy * k + dx). Every kernel fuses the layer epilogue, per output channel c:

    y_c = sum_i scale_i[c] * dot_i[c] + bias[c]                    (i over 1 or 2 weight bases)
    y_c = PReLU_slope[c](y_c - shift_in[c]) + shift_out[c]         (when ``prelu``)
    y_c = y_c + residual[c]                                        (when ``shortcut``)
    y_c = y_c + skip[c]                                            (when ``skip``; conv only)
    next_bit_c = not ((y_c - threshold[c]) >= 0)                   (when ``bits_out``; conv only)

The variants are numba closures specialised on those flags (constants to LLVM, so each variant
is branch-free and vectorised), built once per flag combination by the ``*_kernel`` factories and
cached on disk (``cache=True``). All kernels write into caller-provided arrays; outputs must not
alias inputs. Unused arrays are passed as (1, ...)-shaped dummies of the same type.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from frb.bitwise.config import SETTINGS

__all__ = ["conv_kernel", "gemm_kernel", "pack_signs", "run"]

_GEMM_BLOCK = 32  # tokens per parallel work item of the GEMM
SIGN_LANES = 64  # bits per packed word


@intrinsic
def popcount(typingctx, word):
    """Number of set bits of a uint64, as int32 (LLVM ``ctpop``)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.trunc(builder.call(fn, args), ir.IntType(32))

    return types.int32(types.uint64), codegen


@njit(inline="always")
def _csa(a, b, c):
    """Carry-save adder on 64 bit lanes: a + b + c = sum + 2 * carry."""
    u = a ^ b
    return u ^ c, (a & b) | (u & c)


@njit(inline="always")
def _pop9(x0, x1, x2, x3, x4, x5, x6, x7, x8, csa):
    """popcount(x0) + ... + popcount(x8); with ``csa`` via four popcounts of bit-sliced counters."""
    if csa:
        s1, c1 = _csa(x0, x1, x2)
        s2, c2 = _csa(x3, x4, x5)
        s3, c3 = _csa(x6, x7, x8)
        ones, c4 = _csa(s1, s2, s3)
        t, c5 = _csa(c1, c2, c3)
        twos = t ^ c4
        f = t & c4
        fours = c5 ^ f
        eights = c5 & f
        return popcount(ones) + 2 * popcount(twos) + 4 * popcount(fours) + 8 * popcount(eights)
    return (
        popcount(x0) + popcount(x1) + popcount(x2) + popcount(x3) + popcount(x4)
        + popcount(x5) + popcount(x6) + popcount(x7) + popcount(x8)
    )


@njit(inline="always")
def _finish(acc, kbits, scales, bias, prm, res_row, skip_row, dst, nbases, prelu, shortcut, skip):
    """The fused epilogue for one output pixel / token (formula in the module docstring)."""
    for oc in range(dst.shape[0]):
        y = scales[0, oc] * np.float32(kbits - 2 * acc[0, oc])
        if nbases == 2:
            y += scales[1, oc] * np.float32(kbits - 2 * acc[1, oc])
        y += bias[oc]
        if prelu:
            v = y - prm[0, oc]
            y = (v if v >= np.float32(0) else prm[1, oc] * v) + prm[2, oc]
        if shortcut:
            y += res_row[oc]
        if skip:
            y += skip_row[oc]
        dst[oc] = y


def _float_rows(*arrays: types.Type) -> bool:
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float32 for a in arrays)


def _negative_mask(builder, values: ir.Value) -> ir.Value:
    """The i64 whose bit t is ``not (values[t] >= 0)`` (an unordered less-than: NaN gives 1)."""
    zero = ir.Constant(values.type, [0.0] * SIGN_LANES)
    return builder.bitcast(builder.fcmp_unordered("<", values, zero), ir.IntType(SIGN_LANES))


def _load_lanes(context, builder, array_type, array, start) -> ir.Value:
    """SIGN_LANES float32 values of a C-contiguous 1-D array from ``start`` as one LLVM vector."""
    data = context.make_array(array_type)(context, builder, array).data
    vector = ir.VectorType(ir.FloatType(), SIGN_LANES)
    return builder.load(builder.bitcast(builder.gep(data, [start]), vector.as_pointer()), align=4)


@intrinsic
def _sign_word(typingctx, values, thr, start):
    """One packed word: bit t = not ((values[start + t] - thr[start + t]) >= 0), t < 64.

    Written as vector IR (compare 64 lanes, bitcast the <64 x i1> mask to i64) so that LLVM emits
    compare + mask-move instructions (vcmpps / vmovmskps on AVX2, k-masks on AVX-512) instead of
    a loop of 64 scalar compares. The caller guarantees 64 values from ``start``.
    """
    if not (_float_rows(values, thr) and isinstance(start, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        v = _load_lanes(context, builder, signature.args[0], args[0], args[2])
        t = _load_lanes(context, builder, signature.args[1], args[1], args[2])
        return _negative_mask(builder, builder.fsub(v, t))

    return types.uint64(values, thr, start), codegen


@intrinsic
def _scaled_sign_word(typingctx, values, sub, div, start):
    """As ``_sign_word`` with bit t = not (((values[i] - sub[i]) / div[i]) >= 0), i = start + t."""
    if not (_float_rows(values, sub, div) and isinstance(start, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        v, s, d = (_load_lanes(context, builder, signature.args[k], args[k], args[3]) for k in range(3))
        return _negative_mask(builder, builder.fdiv(builder.fsub(v, s), d))

    return types.uint64(values, sub, div, start), codegen


@njit(inline="always")
def _sign_words(values, thr, out_words):
    """out_words[q] bit t = not ((values[64q + t] - thr[64q + t]) >= 0); a partial last word bit by bit."""
    n = values.shape[0]
    full = n // SIGN_LANES
    for q in range(full):
        out_words[q] = _sign_word(values, thr, SIGN_LANES * q)
    for q in range(full, out_words.shape[0]):
        word = np.uint64(0)
        for t in range(min(SIGN_LANES, n - SIGN_LANES * q)):
            c = SIGN_LANES * q + t
            if not (values[c] - thr[c] >= np.float32(0)):
                word |= np.uint64(1) << np.uint64(t)
        out_words[q] = word


@njit(parallel=True, cache=True)
def pack_signs(x, sub, div, out):
    """Pack input signs: bit = not (((x[s, i, j, c] - sub[s, c]) / div[s, c]) >= 0).

    x: (S, H, W, C) float32, C-contiguous; sub, div: (S, C) float32; out: (S, H + 2p, W + 2p,
    words) uint64 whose border of p = (out.shape[1] - H) // 2 pixels is left untouched (zero:
    +1 padding). The arithmetic is float32, as torch's, so the bits equal torch's ``sign`` of the
    same values.
    """
    n_img, height, width, channels = x.shape
    pad = (out.shape[1] - height) // 2
    full = channels // SIGN_LANES
    for r in prange(n_img * height):
        s = r // height
        i = r - s * height
        for j in range(width):
            values = x[s, i, j]
            for q in range(full):
                out[s, i + pad, j + pad, q] = _scaled_sign_word(values, sub[s], div[s], SIGN_LANES * q)
            for q in range(full, out.shape[3]):
                word = np.uint64(0)
                for t in range(min(SIGN_LANES, channels - SIGN_LANES * q)):
                    c = SIGN_LANES * q + t
                    if not ((values[c] - sub[s, c]) / div[s, c] >= np.float32(0)):
                        word |= np.uint64(1) << np.uint64(t)
                out[s, i + pad, j + pad, q] = word


@lru_cache(maxsize=None)
def conv_kernel(
    ksize: int, nbases: int, prelu: bool, shortcut: bool, skip: bool, float_out: bool, bits_out: bool, csa: bool
) -> Callable[..., None]:
    """A binary KxK convolution (stride 1) with the fused epilogue, specialised on the flags.

    ``kernel(x, w, kbits, scales, bias, prm, res, skip_in, thr, out, out_bits)``:
    x (N, Hp, Wp, words) uint64, already padded; w (bases, k*k, words, Cout) uint64;
    kbits = k*k*Cin (valid bits); scales (bases, Cout); bias (Cout); prm (3, Cout) = shift_in,
    slope, shift_out; res, skip_in, out (N, Ho, Wo, Cout) float32 with Ho = Hp - k + 1;
    thr (Cout); out_bits (N, Ho + 2q, Wo + 2q, ceil(Cout / 64)) uint64, written inside its
    q-pixel border. ``csa`` (3x3 only) sums each tap group's popcounts with carry-save adders.
    """
    three = ksize == 3
    use_csa = csa and three

    @njit(parallel=True, cache=True)
    def kernel(x, w, kbits, scales, bias, prm, res, skip_in, thr, out, out_bits):
        n_img, hp, wp, nwords = x.shape
        height = hp - ksize + 1
        width = wp - ksize + 1
        cout = w.shape[3]
        opad = (out_bits.shape[1] - height) // 2
        for r in prange(n_img * height):
            n = r // height
            i = r - n * height
            acc = np.empty((nbases, cout), np.int32)
            row = np.empty(cout, np.float32)
            for j in range(width):
                acc[:, :] = 0
                for q in range(nwords):
                    if three:
                        x0 = x[n, i, j, q]
                        x1 = x[n, i, j + 1, q]
                        x2 = x[n, i, j + 2, q]
                        x3 = x[n, i + 1, j, q]
                        x4 = x[n, i + 1, j + 1, q]
                        x5 = x[n, i + 1, j + 2, q]
                        x6 = x[n, i + 2, j, q]
                        x7 = x[n, i + 2, j + 1, q]
                        x8 = x[n, i + 2, j + 2, q]
                        for oc in range(cout):
                            acc[0, oc] += _pop9(
                                x0 ^ w[0, 0, q, oc], x1 ^ w[0, 1, q, oc], x2 ^ w[0, 2, q, oc],
                                x3 ^ w[0, 3, q, oc], x4 ^ w[0, 4, q, oc], x5 ^ w[0, 5, q, oc],
                                x6 ^ w[0, 6, q, oc], x7 ^ w[0, 7, q, oc], x8 ^ w[0, 8, q, oc], use_csa,
                            )
                            if nbases == 2:
                                acc[1, oc] += _pop9(
                                    x0 ^ w[1, 0, q, oc], x1 ^ w[1, 1, q, oc], x2 ^ w[1, 2, q, oc],
                                    x3 ^ w[1, 3, q, oc], x4 ^ w[1, 4, q, oc], x5 ^ w[1, 5, q, oc],
                                    x6 ^ w[1, 6, q, oc], x7 ^ w[1, 7, q, oc], x8 ^ w[1, 8, q, oc], use_csa,
                                )
                    else:
                        for tap in range(ksize * ksize):
                            a = x[n, i + tap // ksize, j + tap % ksize, q]
                            for b in range(nbases):
                                for oc in range(cout):
                                    acc[b, oc] += popcount(a ^ w[b, tap, q, oc])
                dst = out[n, i, j] if float_out else row
                _finish(
                    acc, kbits, scales, bias, prm,
                    res[n, i, j] if shortcut else res[0, 0, 0],
                    skip_in[n, i, j] if skip else skip_in[0, 0, 0],
                    dst, nbases, prelu, shortcut, skip,
                )
                if bits_out:
                    _sign_words(dst, thr, out_bits[n, i + opad, j + opad])

    return kernel


@lru_cache(maxsize=None)
def gemm_kernel(nbases: int, prelu: bool, shortcut: bool) -> Callable[..., None]:
    """A binary GEMM (Linear layer on tokens) with the fused epilogue, specialised on the flags.

    ``kernel(x, w, kbits, scales, bias, prm, res, out)``: x (T, words) uint64; w (bases, 1,
    words, Cout) uint64; kbits = Cin; res, out (T, Cout) float32; the rest as ``conv_kernel``.
    """

    @njit(parallel=True, cache=True)
    def kernel(x, w, kbits, scales, bias, prm, res, out):
        ntok, nwords = x.shape
        cout = w.shape[3]
        for blk in prange((ntok + _GEMM_BLOCK - 1) // _GEMM_BLOCK):
            acc = np.empty((nbases, cout), np.int32)
            for t in range(blk * _GEMM_BLOCK, min(ntok, (blk + 1) * _GEMM_BLOCK)):
                acc[:, :] = 0
                for q in range(nwords):
                    a = x[t, q]
                    for oc in range(cout):
                        acc[0, oc] += popcount(a ^ w[0, 0, q, oc])
                        if nbases == 2:
                            acc[1, oc] += popcount(a ^ w[1, 0, q, oc])
                _finish(
                    acc, kbits, scales, bias, prm, res[t] if shortcut else res[0], res[0],
                    out[t], nbases, prelu, shortcut, False,
                )

    return kernel


_lock = threading.Lock()
_serialise = True  # until the first launch shows a thread-safe threading layer


def run(kernel: Callable[..., None], *args: object) -> None:
    """Launch a parallel kernel, serialised across Python threads unless the layer is thread-safe.

    numba's ``omp`` and ``tbb`` layers accept concurrent launches; ``workqueue`` aborts the
    process, so every launch takes a lock until the first one reveals the layer in use.
    """
    global _serialise
    if not _serialise:
        kernel(*args)
        return
    with _lock:
        kernel(*args)
        _serialise = numba.threading_layer() not in ("omp", "tbb")


def default_csa() -> bool:
    """Whether 3x3 kernels use the carry-save popcount (chosen in ``frb.bitwise.config``)."""
    return SETTINGS.popcount == "csa"
