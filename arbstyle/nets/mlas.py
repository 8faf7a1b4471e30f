"""Bit-exact replicas of the arithmetic of onnxruntime's CPU (MLAS) kernels, for exact-mode imports.

An int8 network is a chain of roundings: when two runtimes order one float sum differently, a value that lies
within 1e-6 of a rounding boundary lands on the other side, the next layers amplify the one-step difference, and
after a dozen layers a per-channel statistic of conditional instance norm flips, moving a whole channel of the
picture. Matching onnxruntime's output therefore needs its exact arithmetic, not just its formulas:

- float Conv runs as im2col + SGEMM: each output is a float32 fused-multiply-add chain over the reduction index
  k = (input channel, kernel row, kernel column), restarted every 128 values of k (MLAS's K blocking), the block
  sums added in order, then the bias;
- QLinearConv accumulates in exact integers, then multiplies by one float32 ratio per output channel;
- QLinearGlobalAveragePool, QLinearMul and QLinearAdd requantize with float32 ratios (QLinearAdd with FMAs).

Rounding is to nearest, ties to even, everywhere (the CPU's default mode). FMA is emulated exactly by float64
arithmetic (the product of two float32 values is exact in float64), inside `jax.enable_x64`, and so are the
divisions and square roots whose XLA lowering is not correctly rounded.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from jax import lax

SGEMM_STRIDE_N = SGEMM_STRIDE_K = 128  # MLAS_SGEMM_STRIDEN/K: panel sizes; a K panel restarts the accumulator
SGEMM_THREAD_COMPLEXITY = 64 * 1024  # MLAS_SGEMM_THREAD_COMPLEXITY: multiply-adds per thread worth starting
MAXIMUM_THREADS = 16  # MLAS_MAXIMUM_THREAD_COUNT
THREAD_ALIGN_N = 16  # MLAS_SGEMM_STRIDEN_THREAD_ALIGN


def _x64():
    return jax.enable_x64(True)


def divide(a, b):
    """float32 a / b, correctly rounded. (XLA rewrites a division by a broadcast scalar into a multiplication by
    its reciprocal, which is off by one ulp about half the time; float64 then float32 is exact: double rounding
    is harmless for division when 53 >= 2 * 24 + 2.)"""
    with _x64():
        return (jnp.asarray(a).astype(jnp.float64) / jnp.asarray(b).astype(jnp.float64)).astype(jnp.float32)


def sqrt(a):
    """float32 sqrt, correctly rounded (same argument as `divide`)."""
    with _x64():
        return jnp.sqrt(jnp.asarray(a).astype(jnp.float64)).astype(jnp.float32)


def multiply(a, b):
    """float32 a * b, rounded once (kept apart from any following add, which XLA could fuse into an FMA)."""
    with _x64():
        return (jnp.asarray(a).astype(jnp.float64) * jnp.asarray(b).astype(jnp.float64)).astype(jnp.float32)


def _fma32(a, b, c):
    """round_to_float32(a * b + c), one rounding: the float64 product of float32 values is exact."""
    with _x64():
        return (a.astype(jnp.float64) * b.astype(jnp.float64) + c.astype(jnp.float64)).astype(jnp.float32)


def onnxruntime_threads() -> int:
    """onnxruntime's default intra-op thread count: the physical cores (from /proc/cpuinfo where it exists)."""
    try:
        cores, physical = set(), None
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "physical id":
                physical = value.strip()
            elif key.strip() == "core id":
                cores.add((physical, value.strip()))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def _threads(work: float, max_threads: int) -> int:
    return min(int(work / SGEMM_THREAD_COMPLEXITY) + 1 if work < SGEMM_THREAD_COMPLEXITY * MAXIMUM_THREADS
               else MAXIMUM_THREADS, max_threads)


def _align(n: int) -> int:
    return (n + THREAD_ALIGN_N - 1) // THREAD_ALIGN_N * THREAD_ALIGN_N


def _stride_k(columns: int, k: int) -> int:
    """MlasSgemmOperation / MlasConvOperation: a narrow slice of columns gets a deeper K panel."""
    stride_n, stride_k = SGEMM_STRIDE_N, SGEMM_STRIDE_K
    if columns < k:
        while stride_n > 16 and stride_n // 2 >= columns:
            stride_n, stride_k = stride_n // 2, stride_k * 2
    return stride_k  # (when columns >= k it can only shrink to a K that fits in one panel anyway)


def conv_k_panel(filters: int, columns: int, k: int, pointwise: bool, max_threads: int) -> int:
    """The K panel MLAS uses for a float Conv with `filters` outputs over `columns` output pixels.

    A pointwise conv runs as one threaded SGEMM (split along the larger of filters and columns), any other as
    im2col over column segments (MlasConvPrepare's ThreadStrideN). Segments of unequal width could get different
    panels; for the networks here every segment gets the same one.
    """
    threads = _threads(float(filters) * columns * k, max_threads)
    if pointwise or filters > columns:
        segment = _align(-(-columns // threads)) if threads > 1 and columns > filters else columns
    else:
        segment = -(-columns // threads)
        if threads > 1:
            segment = _align(segment)
    segment = min(segment, columns)
    return _stride_k(segment, k)


def sgemm_conv(x, kernel, bias, stride: int = 1, *, pointwise: bool = False, max_threads: int = 1):
    """A VALID convolution (x already padded, NHWC float32) computed in MLAS SGEMM's order.

    kernel: (kh, kw, C, O); bias: (O,) or None. `pointwise`: the file's conv is 1x1, stride 1, unpadded (MLAS
    runs it as a direct GEMM); `max_threads`: onnxruntime's intra-op thread count, which sets the K panels of
    narrow GEMMs. Returns (B, Ho, Wo, O) float32.
    """
    kh, kw, channels, out = kernel.shape
    b, h, w, _ = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    span_h, span_w = (ho - 1) * stride + 1, (wo - 1) * stride + 1
    taps = channels * kh * kw  # im2col row order: channel-major, then kernel row, then column
    kernel = kernel.astype(jnp.float32)

    def tap(k, acc):
        c, rest = jnp.divmod(k, kh * kw)
        i, j = jnp.divmod(rest, kw)
        window = lax.dynamic_slice(x, (0, i, j, c), (b, span_h, span_w, 1))[:, ::stride, ::stride, :]
        weights = lax.dynamic_slice(kernel, (i, j, c, 0), (1, 1, 1, out)).reshape(out)
        return _fma32(window, weights, acc)

    panel = conv_k_panel(out, ho * wo, taps, pointwise, max_threads)
    total = None
    for start in range(0, taps, panel):
        stop = min(start + panel, taps)
        block = lax.fori_loop(start, stop, tap, jnp.zeros((b, ho, wo, out), jnp.float32))
        total = block if total is None else total + block
    return total if bias is None else total + bias.astype(jnp.float32)


def requantize(value, zero_point):
    """float32 value -> int8 level: round half to even, add the zero point, saturate."""
    return jnp.clip(jnp.round(value) + zero_point, -128.0, 127.0)


# |int8 step| * |uint8 step| <= 128 * 255: a float32 sum of this many such products stays an exact integer
_EXACT_F32_TERMS = (1 << 24) // (128 * 255)


def qlinear_conv(steps, kernel_steps, bias_steps, ratio, zero_point, *, stride: int = 1, padding="VALID",
                 groups: int = 1):
    """QLinearConv on integer steps (level - zero point, as float32 holding integers).

    The int32 accumulation is exact: float32 convolutions over slices of input channels small enough that every
    partial sum is an integer below 2**24 (exact in any order), added up in int32. Then float32(acc) * ratio,
    ratio = float32(x_scale * w_scale / y_scale) per output channel. Returns int8 levels (as float32).
    """
    kh, kw, per_group, _ = kernel_steps.shape
    chunk = max(1, _EXACT_F32_TERMS // (kh * kw))
    slices = [(0, per_group)] if groups > 1 or per_group <= chunk else \
        [(start, min(start + chunk, per_group)) for start in range(0, per_group, chunk)]
    acc = bias_steps.astype(jnp.int32)
    for start, stop in slices:
        part = lax.conv_general_dilated(
            steps[..., start:stop] if len(slices) > 1 else steps, kernel_steps[:, :, start:stop, :],
            (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups,
            precision=lax.Precision.HIGHEST)
        acc = acc + part.astype(jnp.int32)
    return requantize(acc.astype(jnp.float32) * ratio, zero_point)


def qlinear_global_average_pool(steps, ratio, zero_point):
    """QLinearGlobalAveragePool of integer steps (B, H, W, C): exact integer sum, float32(sum) * ratio,
    ratio = x_scale / (y_scale * float32(H * W)). Returns int8 levels (B, C)."""
    total = jnp.sum(steps.astype(jnp.int32), axis=(1, 2))
    return requantize(total.astype(jnp.float32) * ratio, zero_point)


def qlinear_mul(a_steps, b_steps, ratio, zero_point):
    """QLinearMul: float32(integer product) * ratio, ratio = float32(a_scale * b_scale / y_scale)."""
    return requantize((a_steps * b_steps).astype(jnp.float32) * ratio, zero_point)


def qlinear_add(a_levels, b_levels, ratio_a, ratio_b, fixed, level_range=(0.0, 255.0)):
    """QLinearAdd (MLAS AVX2/AVX-512 kernel): fma(a, ratio_a, fma(b, ratio_b, fixed)) on the raw levels, where
    fixed = float32(zp_y) - (ratio_a * zp_a + ratio_b * zp_b), rounded and saturated (the zero point is inside
    `fixed`). onnxruntime runs it on uint8 levels here, hence the default range."""
    value = _fma32(a_levels, ratio_a, _fma32(b_levels, ratio_b, fixed))
    return jnp.clip(jnp.round(value), *level_range)


def global_average_pool(x):
    """onnxruntime's float GlobalAveragePool of (B, H, W, C): per channel, the pixels in row-major order are
    summed in four interleaved float32 lanes (pixel i into lane i % 4), the lanes reduced as (l0 + l2) + (l1 + l3),
    then divided by H * W. (Pixels beyond a multiple of four, if any, are added last, in order.)"""
    b, h, w, c = x.shape
    count = h * w
    flat = x.reshape(b, count, c)
    rows = count // 4
    lanes = flat[:, :rows * 4].reshape(b, rows, 4, c)
    acc = lax.fori_loop(0, rows, lambda i, acc: acc + lanes[:, i], jnp.zeros((b, 4, c), jnp.float32))
    total = (acc[:, 0] + acc[:, 2]) + (acc[:, 1] + acc[:, 3])
    for i in range(rows * 4, count):
        total = total + flat[:, i]
    return divide(total, jnp.float32(count))
