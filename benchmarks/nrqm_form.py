"""Writes the body of ``srbench.metrics.nrqm_kernels.quadratic_forms``: a 15-neighbour quadratic form term by term.

``python benchmarks/nrqm_form.py`` prints the loop's lines (views of the 15 neighbour rows, their values at a
pixel, the form over the packed upper triangle ``f``, its
coefficients read first); tests/metrics/test_nrqm.py checks that the kernel holds
exactly these lines. Written out because LLVM keeps 15 named values in vector registers, where loops over the
neighbours make it keep a row of partial sums in memory.
"""

from __future__ import annotations

import textwrap

N = 15


def _grouped(names, values, indent: str, per: int, n: int = N) -> list[str]:
    lines = []
    for first in range(0, n, per):
        idx = range(first, min(first + per, n))
        lines.append(indent + ", ".join(names(i) for i in idx) + " = " + ", ".join(values(i) for i in idx))
    return lines


def form_lines() -> list[str]:
    rows, k = [], 0
    for i in range(N):
        terms = []
        for j in range(i, N):
            terms.append(f"c{k} * x{j}")
            k += 1
        rows.append(f"x{i} * (" + " + ".join(terms) + ")")
    wrapped = textwrap.wrap(" + ".join(rows), width=98, break_long_words=False, break_on_hyphens=False)
    form = ["                q = (" + wrapped[0]] + ["                     " + line for line in wrapped[1:]]
    form[-1] += ")"
    views = _grouped(lambda i: f"v{i}", lambda i: f"flat[o[{i}] + base:o[{i}] + base + cols]", " " * 12, 2)
    values = _grouped(lambda i: f"x{i}", lambda i: f"v{i}[x]", " " * 16, 5)
    # The coefficients as named values, read once per band: read from the array in the loop, they would make
    # LLVM check that the stores to the output miss it, and it does not vectorise the loop.
    coefficients = _grouped(lambda i: f"c{i}", lambda i: f"f[{i}]", " " * 8, 8, N * (N + 1) // 2)
    return [*coefficients, "        for y in range(rows):", "            base = (first + y) * w + left",
            "            acc = out[k, y]", *views, " " * 12 + "for x in range(cols):", *values, *form]


if __name__ == "__main__":
    print("\n".join(form_lines()))
