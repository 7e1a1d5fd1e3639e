"""Fréchet distance between Gaussians fitted to two feature sets (the "FID" formula).

Pure float64 numpy. The matrix square roots go through symmetric eigendecompositions with
eigenvalues clipped at zero, because covariances of real feature sets are often singular or
nearly so (fewer samples than dimensions, dead CNN channels), and scipy's general ``sqrtm``
then returns complex or NaN values.
"""

from __future__ import annotations

import numpy as np

from engine.metrics.validate import as_features


def _sym(s: np.ndarray) -> np.ndarray:
    """Symmetrise, so rounding asymmetry cannot leak into eigh (which reads one triangle)."""
    s = np.asarray(s, dtype=np.float64)
    return (s + s.T) / 2.0


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Principal square root of a symmetric PSD matrix; negative rounding eigenvalues -> 0."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of an (N, D) feature array, float64, unbiased (N-1)."""
    x = as_features(features, "features")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance |mu1-mu2|^2 + tr S1 + tr S2 - 2 tr (S1^½ S2 S1^½)^½, clamped at >= 0.

    The symmetric form S1^½ S2 S1^½ (rather than S1 S2) keeps every step on symmetric PSD
    matrices, so eigh/eigvalsh apply and clipping eigenvalues at 0 is valid.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = _sym(np.atleast_2d(sigma1)), _sym(np.atleast_2d(sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}"
        )
    return frechet_against(mu1, s1)(mu2, s2)


def frechet_against(mu_ref, sigma_ref):
    """``frechet_from_stats(mu_ref, sigma_ref, mu, sigma)`` as a function of (mu, sigma), the
    reference's square root taken once: many candidates against one reference cost one eigvalsh
    each instead of an eigh and an eigvalsh (the distance is symmetric in its two Gaussians)."""
    mu_ref = np.atleast_1d(np.asarray(mu_ref, dtype=np.float64))
    s_ref = _sym(np.atleast_2d(sigma_ref))
    root = _psd_sqrt(s_ref)
    trace_ref = np.trace(s_ref)

    def distance(mu, sigma) -> float:
        mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
        s = _sym(np.atleast_2d(sigma))
        if mu.shape != mu_ref.shape or s.shape != s_ref.shape:
            raise ValueError(f"shape mismatch: mu {mu.shape}, sigma {s.shape}, reference {mu_ref.shape}")
        cross = np.linalg.eigvalsh(_sym(root @ s @ root))
        diff = mu_ref - mu
        fd = diff @ diff + trace_ref + np.trace(s) - 2.0 * np.sqrt(np.clip(cross, 0.0, None)).sum()
        return max(float(fd), 0.0)

    return distance


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    return frechet_from_stats(mu1, s1, mu2, s2)
