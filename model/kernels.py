"""Compiled relaxation loops (numba, `pip install memprop[fast]`): the same results, less Python.

A float relaxation step of N = 100 units on a minibatch of 8 is a 8 x 100 x 100 product and a
dozen element-wise passes; numpy's per-call overhead, not arithmetic, is most of its time.
These kernels run the whole loop (every step, the per-sample freezing, the batch compaction) in
one compiled call and keep the results bit for bit:

- the matrix product is the very `cblas_dgemm` numpy calls, the same function of the same
  OpenBLAS library (found through threadpoolctl), with numpy's arguments (row major, no
  transposition), on the same rows in the same order, padding included;
- every element-wise operation is numpy's, in numpy's order (no fused multiply-add: numba does
  not contract without fastmath), the clip written as numpy's clip loop writes it;
- the fixed-point kernels compute in integers, where the order of a sum does not matter.

`available()` compiles the kernels once per process (cached on disk by numba), checks the dgemm
against numpy's `@` bit for bit, and says False when numba, the BLAS symbol or that check is
missing: the callers then use their numpy loops, which give the same numbers, only slower.
"""

from __future__ import annotations

import ctypes

import numpy as np

#: CBLAS constants (cblas.h): row-major order, no transposition.
_ROW_MAJOR, _NO_TRANS = 101, 111
_STATE: dict = {"checked": False, "ok": False, "reason": "not checked yet", "gemm": 0, "syrk": 0, "ilp64": True}
_UPPER, _TRANS = 121, 112


def _find_blas() -> tuple[int, int, bool]:
    """(addresses of the cblas_dgemm and cblas_dsyrk numpy calls, True if their integers are 64-bit)."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") != "blas" or info.get("internal_api") != "openblas":
            continue
        lib = ctypes.CDLL(info["filepath"])
        for prefix, suffix, ilp64 in (("scipy_", "64_", True), ("", "64_", True), ("scipy_", "", False), ("", "", False)):
            try:
                gemm, syrk = (getattr(lib, f"{prefix}cblas_d{f}{suffix}") for f in ("gemm", "syrk"))
            except AttributeError:
                continue
            return (ctypes.cast(gemm, ctypes.c_void_p).value, ctypes.cast(syrk, ctypes.c_void_p).value, ilp64)
    raise LookupError("no OpenBLAS cblas_dgemm/cblas_dsyrk loaded by numpy")


try:
    import numba
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic
except ImportError as exc:          # the numpy loops serve instead
    numba = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""

    def _gemm_intrinsic(int_bits: int):
        @intrinsic
        def gemm(typingctx, fn, m, n, k, a, lda, b, ldb, c, ldc):
            """C (m x n) = A (m x k) @ B (k x n), row major, through the cblas_dgemm at address fn."""
            sig = types.void(types.intp, types.int64, types.int64, types.int64, types.intp, types.int64,
                             types.intp, types.int64, types.intp, types.int64)

            def codegen(context, builder, signature, args):
                f, m_, n_, k_, a_, lda_, b_, ldb_, c_, ldc_ = args
                i32, it, dbl = ir.IntType(32), ir.IntType(int_bits), ir.DoubleType()
                ptr = ir.IntType(8).as_pointer()
                fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, it, it, it, dbl, ptr, it, ptr, it, dbl, ptr, it])
                call = builder.inttoptr(f, fnty.as_pointer())

                def w(x):
                    return x if int_bits == 64 else builder.trunc(x, it)

                builder.call(call, [ir.Constant(i32, _ROW_MAJOR), ir.Constant(i32, _NO_TRANS),
                                    ir.Constant(i32, _NO_TRANS), w(m_), w(n_), w(k_), ir.Constant(dbl, 1.0),
                                    builder.inttoptr(a_, ptr), w(lda_), builder.inttoptr(b_, ptr), w(ldb_),
                                    ir.Constant(dbl, 0.0), builder.inttoptr(c_, ptr), w(ldc_)])
                return context.get_dummy_value()

            return sig, codegen

        return gemm

    _gemm64 = _gemm_intrinsic(64)
    _gemm32 = _gemm_intrinsic(32)

    def _syrk_intrinsic(int_bits: int):
        @intrinsic
        def syrk(typingctx, fn, n, k, a, lda, c, ldc):
            """Upper triangle of C (n x n) = A^T A for A (k x n) row major: numpy's call for a.T @ a."""
            sig = types.void(types.intp, types.int64, types.int64, types.intp, types.int64, types.intp, types.int64)

            def codegen(context, builder, signature, args):
                f, n_, k_, a_, lda_, c_, ldc_ = args
                i32, it, dbl = ir.IntType(32), ir.IntType(int_bits), ir.DoubleType()
                ptr = ir.IntType(8).as_pointer()
                fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, it, it, dbl, ptr, it, dbl, ptr, it])
                call = builder.inttoptr(f, fnty.as_pointer())

                def w(x):
                    return x if int_bits == 64 else builder.trunc(x, it)

                builder.call(call, [ir.Constant(i32, _ROW_MAJOR), ir.Constant(i32, _UPPER), ir.Constant(i32, _TRANS),
                                    w(n_), w(k_), ir.Constant(dbl, 1.0), builder.inttoptr(a_, ptr), w(lda_),
                                    ir.Constant(dbl, 0.0), builder.inttoptr(c_, ptr), w(ldc_)])
                return context.get_dummy_value()

            return sig, codegen

        return syrk

    _syrk64 = _syrk_intrinsic(64)
    _syrk32 = _syrk_intrinsic(32)

    @njit(cache=True)
    def _gram(fn, ilp64, a, out):
        """out = a.T @ a as numpy computes it: dsyrk's upper triangle, mirrored."""
        k, n = a.shape
        if ilp64:
            _syrk64(fn, n, k, a.ctypes.data, n, out.ctypes.data, n)
        else:
            _syrk32(fn, n, k, a.ctypes.data, n, out.ctypes.data, n)
        for i in range(n):
            for j in range(i + 1, n):
                out[j, i] = out[i, j]

    @njit(cache=True)
    def _eqprop_weights(fn, ilp64, W, mask, a_hi, a_lo, denom, lr, max_step):
        """W += the clipped, masked, symmetrised EqProp step (rules._correlation, Params.apply_update)."""
        n = W.shape[0]
        g_hi = np.empty((n, n))
        g_lo = np.empty((n, n))
        _gram(fn, ilp64, a_hi, g_hi)
        _gram(fn, ilp64, a_lo, g_lo)
        step = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                h, l = g_hi[i, j], g_lo[i, j]
                if i == j:
                    h, l = 0.5 * h, 0.5 * l
                m = 1.0 if mask[i, j] else 0.0      # numpy multiplies by the bool mask cast to float
                d = (h * m - l * m) / denom
                step[i, j] = _clip(lr * d, -max_step, max_step) * m
        for i in range(n):
            for j in range(n):
                up = step[i, j] if i <= j else 0.0
                low = step[j, i] if i > j else 0.0
                W[i, j] += up + low

    @njit(cache=True)
    def _matmul(fn, ilp64, a, b, out, rows):
        """out[:rows] = a[:rows] @ b (all C-contiguous float64), numpy's dgemm call."""
        k, n = b.shape
        if ilp64:
            _gemm64(fn, rows, n, k, a.ctypes.data, a.shape[1], b.ctypes.data, n, out.ctypes.data, out.shape[1])
        else:
            _gemm32(fn, rows, n, k, a.ctypes.data, a.shape[1], b.ctypes.data, n, out.ctypes.data, out.shape[1])

    @njit(cache=True)
    def _clip(x, lo, hi):
        """numpy's clip loop for floats: max then min, NaN kept (signs of zero as numpy leaves them)."""
        if not np.isnan(x):
            x = x if x > lo else lo
        if not np.isnan(x):
            x = x if x < hi else hi
        return x

    @njit(cache=True)
    def _relax_float(fn, ilp64, W, b, v, cur, tv, units, nudged, use_units, beta, eps, lo, hi, tol, limit,
                     steps, converged):
        """network._relax_in_box with pad=True, step for step (see there); v is overwritten."""
        batch, n = v.shape
        rows = batch + (batch & 1)
        va = np.zeros((rows, n))
        cu = np.zeros((rows, n))
        tt = np.zeros((rows, n))
        va[:batch] = v
        cu[:batch] = cur
        if nudged:
            tt[:batch] = tv
        vn = np.empty((rows, n))
        field = np.empty((rows, n))
        idx = np.arange(batch)
        live = np.ones(batch, dtype=np.bool_)
        delta = np.empty(rows)
        real = batch
        done = 0
        for it in range(limit):
            if real == 0:
                break
            m = real + (real & 1)
            _matmul(fn, ilp64, va, W, field, m)
            for r in range(m):
                dmax = 0.0
                for j in range(n):
                    x = va[r, j]
                    g = field[r, j] + b[j]
                    g = g + cu[r, j]
                    g = x - g
                    if nudged:
                        p = tt[r, j] - x
                        if beta != 1.0:
                            p = p * beta
                        if use_units:
                            p = p * units[j]
                        g = g - p
                    g = g * eps
                    y = _clip(x - g, lo, hi)
                    vn[r, j] = y
                    d = abs(y - x)
                    if d > dmax or np.isnan(d):
                        if not np.isnan(dmax):
                            dmax = d
                delta[r] = dmax
            va, vn = vn, va
            done = it + 1
            changed = False
            alive = 0
            for r in range(real):
                going = live[r] and delta[r] > tol
                if live[r] and not going:
                    changed = True
                    v[idx[r]] = va[r]
                    steps[idx[r]] = done
                    live[r] = False
                if going:
                    alive += 1
            if changed and 2 * alive <= real:           # compact: keep the live rows, in order
                k = 0
                for r in range(real):
                    if live[r]:
                        va[k] = va[r]
                        cu[k] = cu[r]
                        tt[k] = tt[r]
                        idx[k] = idx[r]
                        k += 1
                real = k
                for r in range(real):
                    live[r] = True
                if real & 1:                            # the zero pad row
                    va[real] = 0.0
                    cu[real] = 0.0
                    tt[real] = 0.0
        for r in range(real):
            if live[r]:
                v[idx[r]] = va[r]
                steps[idx[r]] = done
                converged[idx[r]] = False

    @njit(cache=True)
    def _relax_fixed(fn, ilp64, Wf, const, v, tv, units, sign, k_frac, sk, skm, shift, lo, hi, tol, limit,
                     steps, converged):
        """fixed._Stepper over network.converge for the hard activations (integers: any batch order)."""
        batch, n = v.shape
        va = v.copy()
        af = np.empty((batch, n))
        acc = np.empty((batch, n))
        idx = np.arange(batch)
        half = (np.int64(1) << (shift - 1)) if shift > 0 else np.int64(0)
        real = batch
        done = 0
        for it in range(limit):
            if real == 0:
                break
            for r in range(real):
                for j in range(n):
                    af[r, j] = va[r, j]
            _matmul(fn, ilp64, af, Wf, acc, real)
            k = 0
            done = it + 1
            for r in range(real):
                dmax = 0
                for j in range(n):
                    x = va[r, j]
                    q = np.int64(acc[r, j]) + const[r, j]
                    q = (q << k_frac) - (x << sk)
                    if sign != 0 and units[j] != 0:
                        pull = (tv[r, j] - x) << skm
                        q = q + pull if sign > 0 else q - pull
                    if shift > 0:
                        q = (q + half) >> shift
                    y = q + x
                    y = lo if y < lo else (hi if y > hi else y)
                    d = abs(y - x)
                    if d > dmax:
                        dmax = d
                    va[r, j] = y
                if dmax > tol:                           # still relaxing: keep it, compacted
                    if k != r:
                        va[k] = va[r]
                        const[k] = const[r]
                        tv[k] = tv[r]
                        idx[k] = idx[r]
                    k += 1
                else:
                    v[idx[r]] = va[r]
                    steps[idx[r]] = done
            real = k
        for r in range(real):
            v[idx[r]] = va[r]
            steps[idx[r]] = done
            converged[idx[r]] = False


    _M32 = np.uint64(0xFFFFFFFF)

    @njit(cache=True)
    def _rotl(x, r):
        return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32

    @njit(cache=True, inline="always")
    def _mix(x0, x1, r):
        x0 = (x0 + x1) & _M32
        return x0, _rotl(x1, r) ^ x0

    @njit(cache=True)
    def _rand(seed, t, s, d):
        """model.rng.rand for one synapse and draw (Threefry-2x32, 13 rounds), in 64-bit words masked to 32."""
        k0 = np.uint64(seed) & _M32
        k1 = np.uint64(0x6D656D70)
        k2 = np.uint64(0x1BD11BDA) ^ k0 ^ k1
        word = ((np.uint64(s) << np.uint64(5)) + (np.uint64(d) >> np.uint64(1))) & _M32
        x0 = ((np.uint64(t) & _M32) + k0) & _M32
        x1 = (word + k1) & _M32
        # rounds 0-3 (rotations 13 15 26 6), key injection 1; 4-7 (17 29 16 24), injection 2;
        # 8-11 (13 15 26 6), injection 3; round 12 (17): rng.threefry2x32 unrolled
        x0, x1 = _mix(x0, x1, 13)
        x0, x1 = _mix(x0, x1, 15)
        x0, x1 = _mix(x0, x1, 26)
        x0, x1 = _mix(x0, x1, 6)
        x0, x1 = (x0 + k1) & _M32, (x1 + k2 + np.uint64(1)) & _M32
        x0, x1 = _mix(x0, x1, 17)
        x0, x1 = _mix(x0, x1, 29)
        x0, x1 = _mix(x0, x1, 16)
        x0, x1 = _mix(x0, x1, 24)
        x0, x1 = (x0 + k2) & _M32, (x1 + k0 + np.uint64(2)) & _M32
        x0, x1 = _mix(x0, x1, 13)
        x0, x1 = _mix(x0, x1, 15)
        x0, x1 = _mix(x0, x1, 26)
        x0, x1 = _mix(x0, x1, 6)
        x0, x1 = (x0 + k0) & _M32, (x1 + k1 + np.uint64(3)) & _M32
        x0, x1 = _mix(x0, x1, 17)
        return x1 if d & 1 else x0     # one call gives draws 2k (x0) and 2k + 1 (x1)

    @njit(cache=True)
    def _pulses(c, mul, shift, mode, seed, t, s, max_pulses):
        """fixed.quantise for one synapse: the pulse count of correlation c."""
        q = c * mul
        mag = abs(q)
        if mode == 0:
            n = mag >> shift
        elif mode == 1:
            n = (mag + (np.int64(1) << (shift - 1))) >> shift
        elif mag != 0:
            noise = np.int64(_rand(seed, t, s, 0) >> np.uint64(32 - shift))
            n = (mag + noise) >> shift
        else:
            n = np.int64(0)
        n = n if q >= 0 else -n
        return max(-max_pulses, min(max_pulses, n))

    @njit(cache=True)
    def _program(codes, classes, n, dev_count, up, down, c2c, top, seed, t, s):
        """fixed.apply_pulses for one synapse: codes/classes are its (devices,) codes and classes."""
        noisy = c2c.max() > 0
        for p in range(abs(n)):
            if dev_count == 1:
                dev = 0
                potentiate = n > 0
            else:
                primary = 0 if n > 0 else 1
                saturated = codes[primary] >= top
                dev = 1 - primary if saturated else primary
                potentiate = not saturated
            c = codes[dev]
            m = classes[dev]
            c = up[m, c] if potentiate else down[m, c]
            if noisy:
                u = _rand(seed, t, s, 2 + 2 * p + dev)   # fixed.c2c_draw
                if np.int64(u >> np.uint64(16)) < c2c[m]:
                    c += 1 if (u >> np.uint64(15)) & np.uint64(1) else -1
                    c = max(0, min(top, c))
            codes[dev] = c

    @njit(cache=True)
    def _learn(a_hi, a_lo, Cb, ii, jj, codes_w, class_w, codes_b, class_b, mul, shift, mode, seed, t, max_pulses,
               up, down, c2c, pulses_w, pulses_b):
        """fixed.learn: correlation, quantisation and programming of every synapse, then every bias."""
        devices = codes_w.shape[0]
        top = up.shape[1] - 1
        n = codes_b.shape[1]
        batch = a_hi.shape[0]
        cw = np.empty(devices, dtype=np.int64)
        mw = np.empty(devices, dtype=np.int64)
        for k in range(ii.shape[0]):
            i, j = ii[k], jj[k]
            s = i * n + j
            sh = shift + 1 if i == j else shift
            c = np.int64(0)                      # C_ij, exact (fixed.correlations)
            for r in range(batch):
                c += a_hi[r, i] * a_hi[r, j] - a_lo[r, i] * a_lo[r, j]
            q = _pulses(c, mul, sh, mode, seed, t, s, max_pulses)
            pulses_w[k] = q
            if q == 0:
                continue
            for d in range(devices):
                cw[d] = codes_w[d, i, j]
                mw[d] = class_w[d, i, j]
            _program(cw, mw, q, devices, up, down, c2c, top, seed, t, s)
            for d in range(devices):
                codes_w[d, i, j] = cw[d]
                codes_w[d, j, i] = cw[d]
        for i in range(n):
            s = n * n + i
            q = _pulses(Cb[i], mul, shift, mode, seed, t, s, max_pulses)
            pulses_b[i] = q
            if q == 0:
                continue
            for d in range(devices):
                cw[d] = codes_b[d, i]
                mw[d] = class_b[d, i]
            _program(cw, mw, q, devices, up, down, c2c, top, seed, t, s)
            for d in range(devices):
                codes_b[d, i] = cw[d]


def available() -> bool:
    """True when the compiled kernels can run here and give numpy's bits (checked once per process)."""
    if not _STATE["checked"]:
        _STATE["checked"] = True
        _STATE["ok"], _STATE["reason"] = _check()
    return _STATE["ok"]


def reason() -> str:
    """Why the compiled kernels are not used ('' when they are)."""
    available()
    return "" if _STATE["ok"] else _STATE["reason"]


def _check() -> tuple[bool, str]:
    if numba is None:
        return False, f"numba is not installed (pip install 'memprop[fast]'): {_IMPORT_ERROR}"
    try:
        _STATE["gemm"], _STATE["syrk"], _STATE["ilp64"] = _find_blas()
    except (LookupError, OSError) as exc:
        return False, str(exc)
    rng = np.random.default_rng(0)
    for rows, n in ((2, 100), (8, 100), (6, 37), (4096, 100)):
        a, w = rng.standard_normal((rows, n)), rng.standard_normal((n, n))
        out = np.empty((rows, n))
        _matmul(_STATE["gemm"], _STATE["ilp64"], a, w, out, rows)
        if not np.array_equal(out, a @ w):
            return False, f"the compiled dgemm call differs from numpy's @ ({rows} x {n})"
        gram = np.empty((n, n))
        _gram(_STATE["syrk"], _STATE["ilp64"], a, gram)
        if not np.array_equal(gram, a.T @ a):
            return False, f"the compiled dsyrk call differs from numpy's a.T @ a ({rows} x {n})"
    return True, ""


def relax_float(W, b, v, cur, tv, units, beta, eps, lo, hi, tol, limit):
    """The padded in-box float relaxation (network._relax_in_box); returns (v, steps, converged)."""
    batch, n = v.shape
    steps = np.zeros(batch, dtype=np.int64)
    converged = np.ones(batch, dtype=np.bool_)
    nudged = tv is not None
    use_units = units is not None
    _relax_float(_STATE["gemm"], _STATE["ilp64"], W, b, v, cur, tv if nudged else v, units if use_units else b,
                 nudged, use_units, float(beta), float(eps), float(lo), float(hi), float(tol), int(limit),
                 steps, converged)
    return v, steps, converged


def relax_fixed(Wf, const, v, tv, units, sign, k_frac, sk, skm, shift, lo, hi, tol, limit):
    """fixed_relax for the hard activations, nothing clamped; returns (v, steps, converged)."""
    batch, n = v.shape
    steps = np.zeros(batch, dtype=np.int64)
    converged = np.ones(batch, dtype=np.bool_)
    _relax_fixed(_STATE["gemm"], _STATE["ilp64"], Wf, const, v, tv, units, int(sign), int(k_frac), int(sk),
                 int(skm), int(shift), int(lo), int(hi), int(tol), int(limit), steps, converged)
    return v, steps, converged


ROUNDING_CODES = {"truncate": 0, "nearest": 1, "stochastic": 2}


def learn_fixed(a_hi, a_lo, Cb, ii, jj, codes_w, class_w, codes_b, class_b, mul, shift, rounding, seed, t,
                max_pulses, up, down, c2c):
    """fixed.learn from the activations and the bias correlations Cb (in place); returns the pulse counts."""
    pulses_w = np.zeros(len(ii), dtype=np.int64)
    pulses_b = np.zeros(codes_b.shape[1], dtype=np.int64)
    _learn(np.ascontiguousarray(a_hi, dtype=np.int64), np.ascontiguousarray(a_lo, dtype=np.int64),
           np.ascontiguousarray(Cb, dtype=np.int64), ii, jj, codes_w,
           class_w, codes_b, class_b, int(mul), int(shift), ROUNDING_CODES[rounding], int(seed) & 0xFFFFFFFF,
           int(t) & 0xFFFFFFFF, int(max_pulses), up, down, c2c, pulses_w, pulses_b)
    return pulses_w, pulses_b


def eqprop_weights(W, mask, a_hi, a_lo, denom, lr, max_step):
    """W += clip(lr (C(a_hi) - C(a_lo)) / denom) on the mask, symmetrised: numpy's operations (in place)."""
    _eqprop_weights(_STATE["syrk"], _STATE["ilp64"], W, mask, np.ascontiguousarray(a_hi), np.ascontiguousarray(a_lo),
                    float(denom), float(lr), float(max_step))
