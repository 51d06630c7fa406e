"""The references IMP on a sparse linear problem (lth.data.sparse_linear) is judged by: the lasso at
the same number of nonzeros (the classical sparse estimator), the dense least-squares (or
near-unpenalised logistic) fit, and how a weight vector's support compares with the true one.
Used by the linear_support analysis.
"""

from __future__ import annotations

import math
import warnings

from lth.core.errors import LTHError
from lth.data.sparse_linear import TASKS, is_int

LARGE_C = 1e4  # "unpenalised" logistic: an MLE need not exist on separable data, so a tiny L2 penalty instead


def _numpy(a):
    import numpy as np

    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def support_metrics(w, beta, tol: float = 0.0) -> dict:
    """How the support of w (|w_j| > tol) compares with that of beta: exact match, precision, recall.

    Precision of an empty w is 0 (nothing found), not the vacuous 1.
    """
    import numpy as np

    found, true = np.abs(_numpy(w).ravel()) > tol, _numpy(beta).ravel() != 0
    if found.shape != true.shape:
        raise LTHError(f"support_metrics: w has {found.size} entries, beta {true.size}")
    hits = int((found & true).sum())
    return {"exact": bool((found == true).all()), "precision": hits / int(found.sum()) if found.any() else 0.0,
            "recall": hits / int(true.sum()) if true.any() else 1.0, "support_size": int(found.sum()),
            "true_positives": hits}


def _test_error(x, y, w, task: str) -> float:
    import numpy as np

    pred = x @ w
    if task == "regression":
        return float(np.mean((pred - y) ** 2))
    return float(np.mean((pred > 0) != (y > 0.5)))


def _least_squares(x, y):
    """Minimum-norm least squares: OLS when x has full column rank, the interpolator of least norm
    otherwise (where gradient flow from zero ends)."""
    import numpy as np

    return np.linalg.lstsq(x, y, rcond=None)[0]


def _logistic(x, y, c: float, l1: bool, tol: float = 1e-6):
    """Logistic regression without intercept (the data model has none); liblinear for L1, lbfgs for L2."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        raise LTHError(f"logistic reference: the training labels are all {int(y[0])}; need both classes")
    if l1:
        model = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", fit_intercept=False, tol=tol,
                                   max_iter=10_000, random_state=0)
    else:
        model = LogisticRegression(C=c, l1_ratio=0.0, solver="lbfgs", fit_intercept=False, tol=tol,
                                   max_iter=10_000)
    return model.fit(x, y.astype(np.int64)).coef_.ravel()


def _path_point(fit, grid: list[float], k: int, stop_after: int | None = None) -> tuple[float, object]:
    """(strength, w) on an L1 path with k nonzeros, else the nearest count (ties: the sparser).

    `grid` runs from strong to weak regularisation in a log parameter t (fit(t) -> w). Where the grid
    steps over k (two features entering between neighbours), the bracket is bisected 30 times. Among
    points with k nonzeros, the weakest regularisation found (least shrinkage, best prediction for
    that support). `stop_after`: stop the grid once that many consecutive points exceed k.
    """
    import numpy as np

    points, over = [], 0  # (t, nonzeros, w)
    for t in grid:
        w = fit(t)
        points.append((t, int(np.count_nonzero(w)), w))
        over = over + 1 if points[-1][1] > k else 0
        if stop_after and over == stop_after:
            break
    if all(c != k for _, c, _ in points):
        for (lo, c_lo, _), (hi, c_hi, _) in zip(points, points[1:]):
            if c_lo < k < c_hi:
                for _ in range(30):
                    mid = (lo + hi) / 2
                    w = fit(mid)
                    points.append((mid, int(np.count_nonzero(w)), w))
                    lo, hi = (mid, hi) if points[-1][1] <= k else (lo, mid)
                break
    t, _, w = min(points, key=lambda p: (abs(p[1] - k), p[1] > k, -p[0]))
    return t, w


def lasso_reference(x_train, y_train, x_test, y_test, k: int, task: str = "regression") -> dict:
    """The L1 path's solution with k nonzeros (or the nearest count), not refitted, plus its refit.

    regression: sklearn `lasso_path` (objective ||y - Xw||^2 / 2n + alpha ||w||_1, no intercept, as the
    data model) on 400 log-spaced alphas from alpha_max (w = 0) down to 1e-4 alpha_max; logistic:
    L1-penalised LogisticRegression (liblinear, no intercept) on 200 log-spaced C from C_min (w = 0)
    up to 1e4 C_min, stopped once 5 consecutive points have more than k nonzeros. See `_path_point`
    for which point is taken. `test_error` is the plain lasso's (MSE; 0-1 error for logistic), the
    reference; `refit_test_error` that of the least-squares (near-unpenalised logistic) refit on the
    lasso's support (the relaxed lasso), which removes the shrinkage. `exact_k` is False where no
    point has k nonzeros (e.g. k > n_train: a lasso solution has at most n nonzeros).
    """
    import numpy as np
    import torch

    x, y, xt, yt = map(_numpy, (x_train, y_train, x_test, y_test))
    if task not in TASKS:
        raise LTHError(f"lasso_reference: task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    if not is_int(k) or not 0 <= k <= x.shape[1]:
        raise LTHError(f"lasso_reference: k must be an integer in 0..{x.shape[1]}, got {k!r}")
    if task == "regression":
        from sklearn.linear_model import lasso_path

        log_alpha_max = math.log(np.abs(x.T @ y).max() / len(y))

        def fit(t):  # t = -log(alpha)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at the weakest alphas, far from k
                return lasso_path(x, y, alphas=[math.exp(-t)], tol=1e-8, max_iter=100_000)[1][:, 0]

        grid = -log_alpha_max + np.linspace(0, 4 * math.log(10), 400)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coefs = lasso_path(x, y, alphas=np.exp(-grid), tol=1e-8, max_iter=100_000)[1]  # warm-started
        by_t = dict(zip(grid, coefs.T))
        t, w = _path_point(lambda t: by_t[t] if t in by_t else fit(t), list(grid), k)
        strength = {"alpha": math.exp(-t)}
    else:
        log_c_min = -math.log(np.abs(x.T @ (y - 0.5)).max())
        grid = log_c_min + np.linspace(0, 4 * math.log(10), 200)
        t, w = _path_point(lambda t: _logistic(x, y, math.exp(t), l1=True), list(grid), k, stop_after=5)
        strength = {"C": math.exp(t)}
    refit = np.zeros_like(w)
    on = np.flatnonzero(w)
    if len(on):
        refit[on] = _least_squares(x[:, on], y) if task == "regression" else _logistic(x[:, on], y, LARGE_C, l1=False)
    nonzeros = int(np.count_nonzero(w))
    return {"nonzeros": nonzeros, "exact_k": nonzeros == k, **strength,
            "test_error": _test_error(xt, yt, w, task), "weights": torch.as_tensor(w),
            "refit_test_error": _test_error(xt, yt, refit, task), "refit_weights": torch.as_tensor(refit)}


def dense_reference(x_train, y_train, x_test, y_test, task: str = "regression") -> dict:
    """The dense model IMP starts from: minimum-norm least squares (OLS when n >= dim; the limit of
    gradient flow from zero either way), or logistic regression with a negligible L2 penalty (C = 1e4:
    on separable data the MLE does not exist, and a large C points along the max-margin direction)."""
    import numpy as np
    import torch

    x, y, xt, yt = map(_numpy, (x_train, y_train, x_test, y_test))
    if task not in TASKS:
        raise LTHError(f"dense_reference: task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    w = _least_squares(x, y) if task == "regression" else _logistic(x, y, LARGE_C, l1=False)
    return {"nonzeros": int(np.count_nonzero(w)), "test_error": _test_error(xt, yt, w, task),
            "train_error": _test_error(x, y, w, task), "weights": torch.as_tensor(w)}
