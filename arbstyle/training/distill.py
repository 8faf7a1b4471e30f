"""Fit a style predictor's bottleneck to a teacher's embeddings, in closed form.

Magenta made its mobile model by distillation: a small predictor learned to reproduce the big one's embeddings.
Here the roles are reversed and the problem is linear: with the trunk frozen, the bottleneck is a linear map from
the trunk's pooled features (768 for Inception-v3 at Mixed_6e) to the 100-d embedding, so the embeddings of a
teacher model (e.g. `magenta-mobile`, whose transformer and CIN heads the student shares) on the same augmented
style images determine it by ridge regression. One pass over the styles replaces thousands of gradient steps.

`arbstyle train` calls `fit_bottleneck` when `init.distill.teacher` is set, before its first step; the result is
saved as checkpoint 0, so the distilled model and any fine-tuning after it can be compared.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

log = logging.getLogger("arbstyle.training.distill")

# Ridge strengths tried, relative to the mean variance of a centred feature; the best on held-out styles wins.
RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0, 3.0, 10.0)


def collect(student, teacher, styles: Iterator[np.ndarray], count: int, *, progress=None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F), teacher embeddings (N, D)) for `count` style images from batches (B, H, W, 3) in [0, 1]."""
    from flax import nnx

    features = nnx.jit(lambda m, x: m.predictor.features(x))
    embed = nnx.jit(lambda m, x: m.embed(x))
    xs, ys, seen = [], [], 0
    while seen < count:
        batch = next(styles)
        xs.append(np.asarray(features(student, batch), np.float64))
        ys.append(np.asarray(embed(teacher, batch), np.float64))
        seen += len(batch)
        if progress is not None:
            progress.update(len(batch))
    return np.concatenate(xs)[:count], np.concatenate(ys)[:count]


def ridge(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """W (F, D), b (D,) minimising |x W + b - y|^2 + strength * N * mean_var(x) * |W|^2 (b not penalised)."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    scale = np.trace(gram) / gram.shape[0]
    w = np.linalg.solve(gram + strength * scale * np.eye(gram.shape[0]), xc.T @ yc)
    return w, my - mx @ w


def r2(pred: np.ndarray, y: np.ndarray) -> float:
    """Explained variance of y (all dimensions together)."""
    return float(1.0 - ((pred - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


def fit(x: np.ndarray, y: np.ndarray, holdout: float = 0.1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Choose the ridge strength on the last `holdout` of the rows, then refit on all of them."""
    n_val = max(1, int(round(len(x) * holdout)))
    xt, yt, xv, yv = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    scores = {}
    for strength in RIDGE_GRID:
        w, b = ridge(xt, yt, strength)
        scores[strength] = r2(xv @ w + b, yv)
    best = max(scores, key=scores.get)
    w, b = ridge(x, y, best)
    report = {"styles": len(x), "held_out": n_val, "ridge": best, "held_out_r2": scores[best],
              "train_r2": r2(x @ w + b, y), "r2_by_ridge": {f"{k:g}": v for k, v in scores.items()}}
    return w, b, report


def fit_bottleneck(student, teacher, styles: Iterator[np.ndarray], count: int, *, holdout: float = 0.1,
                   progress=None) -> dict:
    """Set `student.predictor.bottleneck` to the ridge regression of the teacher's embeddings on the student's
    pooled trunk features; returns the fit's report (held-out R^2 and the chosen strength)."""
    import jax.numpy as jnp

    x, y = collect(student, teacher, styles, count, progress=progress)
    w, b, report = fit(x, y, holdout)
    bottleneck = student.predictor.bottleneck
    if tuple(bottleneck.kernel.shape) != w.shape:
        raise ValueError(f"the student's bottleneck is {tuple(bottleneck.kernel.shape)}, the teacher's embeddings "
                         f"need {w.shape}")
    bottleneck.kernel.set_value(jnp.asarray(w, jnp.float32))
    bottleneck.bias.set_value(jnp.asarray(b, jnp.float32))
    log.info("bottleneck distilled from %d styles: held-out R^2 %.4f (ridge %g), training R^2 %.4f",
             report["styles"], report["held_out_r2"], report["ridge"], report["train_r2"])
    return report
