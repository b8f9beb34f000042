"""The compiled loops of Ma's GSM and local frequency features (numba), imported by :mod:`srbench.metrics.nrqm`
when it first computes them (numba's import and the functions' cached machine code load then, not with srbench).

Two stages dominate Ma's score and are memory-bound sums over a plane that numpy could only make as
whole-array passes or gathered matrices: the neighbourhood covariances and quadratic forms of the divisive
normalisation (read here straight from the scale's flat copy of its bands), and SSIM's 11x11 local sums
(one vertical and one horizontal pass per output row, every map used while it is in cache). The block DCT's
7x7 blocks are gathered and its per-block statistics reduced here too (the transform itself stays BLAS).

The loops are written so that LLVM vectorises them: views of whole rows (a slice of a row proves its indices
non-negative, so no wrap-around test), numpy's error model (a float division without Python's zero test),
``reassoc`` so that a sum may be split into vector lanes and ``contract`` for fused multiply-adds. None of
these lets a NaN or an infinity pass as a number. Their sums are the same as numpy's in another order: the
features move by under 1e-12 relative (tests/metrics/test_nrqm.py holds them to the implementation before).

Machine code is cached under ``<srbench cache>/numba`` (srbench.paths) unless NUMBA_CACHE_DIR says where.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from srbench import paths


def _cache_in_srbench_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = paths.cache_dir() / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if os.access(folder, os.W_OK):  # else numba's own place (next to this file, else the user's cache)
        numba.config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]  # set from the environment at import


_cache_in_srbench_cache()

_FAST = {"reassoc", "contract"}
_compiled = numba.njit(cache=True, fastmath=_FAST, nogil=True, error_model="numpy")
_inlined = numba.njit(cache=True, fastmath=_FAST, nogil=True, error_model="numpy", inline="always")


@_compiled
def neighbourhood_products(flat, offsets, counts, shared, rows, cols, w, out):  # pragma: no cover - compiled
    """out[k, i, j] (j >= i) += the sum over inner pixels y < rows, x < cols of the product of band k's
    neighbours i and j (i, j < counts[k]), neighbour i of pixel (y, x) being flat[offsets[k, i] + y * w + x].
    The first ``shared`` neighbours are every band's (the orientations' centres): their products with each
    other are made for band 0 only. Row by row: each row's sum is added to the total (in vector lanes within
    the row)."""
    for y in range(rows):
        base = y * w
        for k in range(offsets.shape[0]):
            n = counts[k]
            for i in range(n):
                vi = flat[offsets[k, i] + base:offsets[k, i] + base + cols]
                j = i if k == 0 or i >= shared else shared
                while j + 3 < n:  # four columns at a time: each load of vi serves four products
                    va = flat[offsets[k, j] + base:offsets[k, j] + base + cols]
                    vb = flat[offsets[k, j + 1] + base:offsets[k, j + 1] + base + cols]
                    vc = flat[offsets[k, j + 2] + base:offsets[k, j + 2] + base + cols]
                    vd = flat[offsets[k, j + 3] + base:offsets[k, j + 3] + base + cols]
                    sa = 0.0
                    sb = 0.0
                    sc = 0.0
                    sd = 0.0
                    for x in range(cols):
                        sa += vi[x] * va[x]
                        sb += vi[x] * vb[x]
                        sc += vi[x] * vc[x]
                        sd += vi[x] * vd[x]
                    out[k, i, j] += sa
                    out[k, i, j + 1] += sb
                    out[k, i, j + 2] += sc
                    out[k, i, j + 3] += sd
                    j += 4
                while j < n:
                    va = flat[offsets[k, j] + base:offsets[k, j] + base + cols]
                    sa = 0.0
                    for x in range(cols):
                        sa += vi[x] * va[x]
                    out[k, i, j] += sa
                    j += 1


# Fifteen neighbours at most: the 3x3 window less its centre, the parent, the six orientations' centres.
NEIGHBOURS = 15


@_compiled
def quadratic_forms(flat, offsets, forms, first, rows, left, cols, w, n_spatial, out):  # pragma: no cover
    """out[k, y, x] = sqrt(v' A_k v / n_spatial[k]) at inner pixel (first + y, left + x), v band k's 15
    neighbours there (as in :func:`neighbourhood_products`; a band with fewer has offset 0 and coefficients 0
    past them: a zero term is exact). ``forms[k]`` is A_k's upper triangle row by row, its diagonal as it
    is and A_k + A_k' above it: the form counts each pair of neighbours once, 120 multiply-adds per pixel.

    Written out term by term (benchmarks/nrqm_form.py writes the text): the 15 values and the products stay in
    vector registers, the coefficients are broadcast from memory; 2.7x faster than loops over the neighbours,
    which keep a row of partial sums in memory (two loads and a store per multiply-add).
    """
    for k in range(offsets.shape[0]):
        o = offsets[k]
        f = forms[k]
        scale = 1.0 / n_spatial[k]
        c0, c1, c2, c3, c4, c5, c6, c7 = f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
        c8, c9, c10, c11, c12, c13, c14, c15 = f[8], f[9], f[10], f[11], f[12], f[13], f[14], f[15]
        c16, c17, c18, c19, c20, c21, c22, c23 = f[16], f[17], f[18], f[19], f[20], f[21], f[22], f[23]
        c24, c25, c26, c27, c28, c29, c30, c31 = f[24], f[25], f[26], f[27], f[28], f[29], f[30], f[31]
        c32, c33, c34, c35, c36, c37, c38, c39 = f[32], f[33], f[34], f[35], f[36], f[37], f[38], f[39]
        c40, c41, c42, c43, c44, c45, c46, c47 = f[40], f[41], f[42], f[43], f[44], f[45], f[46], f[47]
        c48, c49, c50, c51, c52, c53, c54, c55 = f[48], f[49], f[50], f[51], f[52], f[53], f[54], f[55]
        c56, c57, c58, c59, c60, c61, c62, c63 = f[56], f[57], f[58], f[59], f[60], f[61], f[62], f[63]
        c64, c65, c66, c67, c68, c69, c70, c71 = f[64], f[65], f[66], f[67], f[68], f[69], f[70], f[71]
        c72, c73, c74, c75, c76, c77, c78, c79 = f[72], f[73], f[74], f[75], f[76], f[77], f[78], f[79]
        c80, c81, c82, c83, c84, c85, c86, c87 = f[80], f[81], f[82], f[83], f[84], f[85], f[86], f[87]
        c88, c89, c90, c91, c92, c93, c94, c95 = f[88], f[89], f[90], f[91], f[92], f[93], f[94], f[95]
        c96, c97, c98, c99, c100, c101, c102, c103 = f[96], f[97], f[98], f[99], f[100], f[101], f[102], f[103]
        c104, c105, c106, c107, c108, c109, c110, c111 = f[104], f[105], f[106], f[107], f[108], f[109], f[110], f[111]
        c112, c113, c114, c115, c116, c117, c118, c119 = f[112], f[113], f[114], f[115], f[116], f[117], f[118], f[119]
        for y in range(rows):
            base = (first + y) * w + left
            acc = out[k, y]
            v0, v1 = flat[o[0] + base:o[0] + base + cols], flat[o[1] + base:o[1] + base + cols]
            v2, v3 = flat[o[2] + base:o[2] + base + cols], flat[o[3] + base:o[3] + base + cols]
            v4, v5 = flat[o[4] + base:o[4] + base + cols], flat[o[5] + base:o[5] + base + cols]
            v6, v7 = flat[o[6] + base:o[6] + base + cols], flat[o[7] + base:o[7] + base + cols]
            v8, v9 = flat[o[8] + base:o[8] + base + cols], flat[o[9] + base:o[9] + base + cols]
            v10, v11 = flat[o[10] + base:o[10] + base + cols], flat[o[11] + base:o[11] + base + cols]
            v12, v13 = flat[o[12] + base:o[12] + base + cols], flat[o[13] + base:o[13] + base + cols]
            v14 = flat[o[14] + base:o[14] + base + cols]
            for x in range(cols):
                x0, x1, x2, x3, x4 = v0[x], v1[x], v2[x], v3[x], v4[x]
                x5, x6, x7, x8, x9 = v5[x], v6[x], v7[x], v8[x], v9[x]
                x10, x11, x12, x13, x14 = v10[x], v11[x], v12[x], v13[x], v14[x]
                q = (x0 * (c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4 + c5 * x5 + c6 * x6 + c7 * x7 + c8 * x8 + c9
                     * x9 + c10 * x10 + c11 * x11 + c12 * x12 + c13 * x13 + c14 * x14) + x1 * (c15 * x1 + c16 * x2 +
                     c17 * x3 + c18 * x4 + c19 * x5 + c20 * x6 + c21 * x7 + c22 * x8 + c23 * x9 + c24 * x10 + c25 * x11
                     + c26 * x12 + c27 * x13 + c28 * x14) + x2 * (c29 * x2 + c30 * x3 + c31 * x4 + c32 * x5 + c33 * x6
                     + c34 * x7 + c35 * x8 + c36 * x9 + c37 * x10 + c38 * x11 + c39 * x12 + c40 * x13 + c41 * x14) + x3
                     * (c42 * x3 + c43 * x4 + c44 * x5 + c45 * x6 + c46 * x7 + c47 * x8 + c48 * x9 + c49 * x10 + c50 *
                     x11 + c51 * x12 + c52 * x13 + c53 * x14) + x4 * (c54 * x4 + c55 * x5 + c56 * x6 + c57 * x7 + c58 *
                     x8 + c59 * x9 + c60 * x10 + c61 * x11 + c62 * x12 + c63 * x13 + c64 * x14) + x5 * (c65 * x5 + c66
                     * x6 + c67 * x7 + c68 * x8 + c69 * x9 + c70 * x10 + c71 * x11 + c72 * x12 + c73 * x13 + c74 * x14)
                     + x6 * (c75 * x6 + c76 * x7 + c77 * x8 + c78 * x9 + c79 * x10 + c80 * x11 + c81 * x12 + c82 * x13
                     + c83 * x14) + x7 * (c84 * x7 + c85 * x8 + c86 * x9 + c87 * x10 + c88 * x11 + c89 * x12 + c90 *
                     x13 + c91 * x14) + x8 * (c92 * x8 + c93 * x9 + c94 * x10 + c95 * x11 + c96 * x12 + c97 * x13 + c98
                     * x14) + x9 * (c99 * x9 + c100 * x10 + c101 * x11 + c102 * x12 + c103 * x13 + c104 * x14) + x10 *
                     (c105 * x10 + c106 * x11 + c107 * x12 + c108 * x13 + c109 * x14) + x11 * (c110 * x11 + c111 * x12
                     + c112 * x13 + c113 * x14) + x12 * (c114 * x12 + c115 * x13 + c116 * x14) + x13 * (c117 * x13 +
                     c118 * x14) + x14 * (c119 * x14))
                acc[x] = np.sqrt(q * scale)


@_inlined
def _taps(v, c, g):  # pragma: no cover - compiled
    """sum_t g[t] v[c + t] for a symmetric 11-tap ``g``: each pair of equal taps is one multiply-add of a sum
    (the adds run beside the multiplies)."""
    return (g[5] * v[c + 5] + g[0] * (v[c] + v[c + 10]) + g[1] * (v[c + 1] + v[c + 9]) + g[2] * (v[c + 2] + v[c + 8])
            + g[3] * (v[c + 3] + v[c + 7]) + g[4] * (v[c + 4] + v[c + 6]))


@_inlined
def _column_moments(img, r, c, g):  # pragma: no cover - compiled
    """The vertical pass at column c of output row r: sum_t g[t] img[r + t, c] and the same of its squares."""
    a = img[r + 5, c]
    s1 = g[5] * a
    s2 = g[5] * (a * a)
    for t in range(5):
        a = img[r + t, c]
        b = img[r + 10 - t, c]
        s1 += g[t] * (a + b)
        s2 += g[t] * (a * a + b * b)
    return s1, s2


@_inlined
def _mean_and_variance(vm, vs, c, g, half_c2):  # pragma: no cover - compiled
    """The horizontal pass at output column c: the local mean and the local variance plus C2 / 2."""
    m = _taps(vm, c, g)
    return m, _taps(vs, c, g) + half_c2 - m * m


@_compiled
def local_moments(img, g, half_c2, mean, var):  # pragma: no cover - compiled
    """SSIM's local mean of ``img`` and its local variance plus C2 / 2 (the symmetric 11-tap separable Gaussian ``g``,
    the valid region) into ``mean`` and ``var``."""
    h, w = img.shape
    vm = np.empty(w)
    vs = np.empty(w)
    for r in range(h - 10):
        for c in range(w):
            vm[c], vs[c] = _column_moments(img, r, c, g)
        mr = mean[r]
        vr = var[r]
        for c in range(w - 10):
            mr[c], vr[c] = _mean_and_variance(vm, vs, c, g, half_c2)


@_compiled
def cs_sum(ref, ref_mean, ref_var, img, g, c2, clamp):  # pragma: no cover - compiled
    """The sum over the valid region of SSIM's contrast-structure map of ``img`` against ``ref`` given ref's
    :func:`local_moments`: (2 cov + C2) / (var_img + var_ref + C2), negative terms set to 0 if ``clamp``."""
    h, w = img.shape
    vm = np.empty(w)
    vs = np.empty(w)
    vp = np.empty(w)
    cs = np.empty(w - 10)
    half_c2 = 0.5 * c2
    total = 0.0
    for r in range(h - 10):
        for c in range(w):
            vm[c], vs[c] = _column_moments(img, r, c, g)
            s3 = g[5] * (img[r + 5, c] * ref[r + 5, c])
            for t in range(5):
                s3 += g[t] * (img[r + t, c] * ref[r + t, c] + img[r + 10 - t, c] * ref[r + 10 - t, c])
            vp[c] = s3
        mr = ref_mean[r]
        vr = ref_var[r]
        for c in range(w - 10):
            m, var = _mean_and_variance(vm, vs, c, g, half_c2)
            cs[c] = (2.0 * _taps(vp, c, g) + c2 - 2.0 * m * mr[c]) / (var + vr[c])
        row = 0.0
        if clamp:
            for c in range(w - 10):
                row += max(cs[c], 0.0)
        else:
            for c in range(w - 10):
                row += cs[c]
        total += row
    return total


@_compiled
def block_columns(padded, top, bottom, cols, out):  # pragma: no cover - compiled
    """The 7x7 blocks at stride 3 of block rows ``top:bottom`` (``cols`` per row) of ``padded``, one block per
    column of ``out`` (49 rows, row-major within the block): the matrix the block DCT multiplies. A gather
    numpy makes as a copy of a 4-d strided view, 10x slower at these sizes."""
    for k in range(49):
        dy, dx = k // 7, k % 7
        target = out[k]
        for r in range(top, bottom):
            source = padded[3 * r + dy]
            start = (r - top) * cols
            for c in range(cols):
                target[start + c] = source[3 * c + dx]


@_compiled
def dct_block_statistics(ac, ratio, variation, orientation):  # pragma: no cover - compiled
    """Per block (a column of ``ac``: its 48 AC coefficients, three orientation groups of 16 rows): the ratio
    whose nearest table entry is the coefficients' generalised-Gaussian shape, the coefficient of variation of
    their magnitudes, and the variance of that coefficient over the three groups (``gama_dct``,
    ``block_dct.m``). Row by row, every block at once (each sum over coefficients a vector of blocks, added in
    row order as numpy's axis-0 sums add them); the magnitudes' squared deviations from their mean come from
    each group's plus 16 times its mean's squared distance to the overall mean (exact, no cancellation)."""
    n, blocks = ac.shape
    group = n // 3
    mean = np.zeros(blocks)
    for k in range(n):
        row = ac[k]
        for j in range(blocks):
            mean[j] += row[j]
    mean /= n
    squares = np.zeros(blocks)
    absolute = np.zeros(blocks)
    group_mean = np.zeros((3, blocks))
    for k in range(n):
        row = ac[k]
        magnitude_sum = group_mean[k // group]
        for j in range(blocks):
            d = row[j] - mean[j]
            squares[j] += d * d
            absolute[j] += abs(d)
            magnitude_sum[j] += abs(row[j])
    group_mean /= group
    group_squares = _group_squares(ac, group_mean)
    for j in range(blocks):
        ratio[j], variation[j], orientation[j] = _block_statistics(
            n, squares[j], absolute[j], group_mean[:, j], group_squares[:, j])


@_inlined
def _group_squares(ac, group_mean):  # pragma: no cover - compiled
    """Per orientation group and block: the sum of the squared deviations of its magnitudes from their mean."""
    n, blocks = ac.shape
    group = n // 3
    sums = np.zeros((3, blocks))
    for k in range(n):
        row = ac[k]
        centre = group_mean[k // group]
        out = sums[k // group]
        for j in range(blocks):
            d = abs(row[j]) - centre[j]
            out[j] += d * d
    return sums


@_inlined
def _block_statistics(n, squares, absolute, group_mean, group_squares):  # pragma: no cover - compiled
    """One block's three statistics from its sums (see :func:`dct_block_statistics`)."""
    group = n // 3
    mean_abs = absolute / n
    ratio = (squares / (n - 1)) / (mean_abs * mean_abs + 1e-7)
    m0, m1, m2 = group_mean[0], group_mean[1], group_mean[2]
    s0, s1, s2 = group_squares[0], group_squares[1], group_squares[2]
    overall = (m0 + m1 + m2) / 3
    spread = (s0 + s1 + s2) + group * ((m0 - overall) ** 2 + (m1 - overall) ** 2 + (m2 - overall) ** 2)
    variation = np.sqrt(spread / (n - 1)) / (overall + 1e-7)
    v0 = np.sqrt(s0 / (group - 1)) / (m0 + 1e-8)
    v1 = np.sqrt(s1 / (group - 1)) / (m1 + 1e-8)
    v2 = np.sqrt(s2 / (group - 1)) / (m2 + 1e-8)
    centre = (v0 + v1 + v2) / 3
    return ratio, variation, ((v0 - centre) ** 2 + (v1 - centre) ** 2 + (v2 - centre) ** 2) / 2
