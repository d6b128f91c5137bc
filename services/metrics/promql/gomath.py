"""Go's ``math.Log`` (the FreeBSD msun algorithm Go implements), vectorised: libm's log
differs from Go's in the last bit now and then, and ln/log2/log10 should print what
Prometheus prints. (Go's Exp on amd64 is assembly whose result depends on the CPU's FMA
support, so exp() stays numpy's.)"""

from __future__ import annotations

import numpy as np

from .values import Floats

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2_HALF = 0.7071067811865476
_L = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)


def go_log(x: Floats) -> Floats:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        f1, ki = np.frexp(x)
        low = f1 < _SQRT2_HALF
        f1 = np.where(low, f1 * 2, f1)
        k = (ki - low).astype(np.float64)
        f = f1 - 1
        s = f / (2 + f)
        s2 = s * s
        s4 = s2 * s2
        t1 = s2 * (_L[0] + s4 * (_L[2] + s4 * (_L[4] + s4 * _L[6])))
        t2 = s4 * (_L[1] + s4 * (_L[3] + s4 * _L[5]))
        r = t1 + t2
        hfsq = 0.5 * f * f
        out = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)
    out = np.where(x == 0, -np.inf, out)
    out = np.where(x < 0, np.nan, out)
    return np.where(np.isnan(x) | np.isposinf(x), x, out)
