"""Benchmark metrics: pure functions of arrays, no I/O.

Frames are (N, T, H, W) with values in [0, 1]; masks (N, T) with 1 = observed.
"""

from __future__ import annotations

import numpy as np


def hamming_counts(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(incorrect pixels, pixels) over the unobserved frames, both thresholded at 0.5: the
    paper's imputation score is their ratio, accumulated over the whole test set."""
    missing = mask < 0.5  # (N, T)
    wrong = (pred > 0.5) != (target > 0.5)  # (N, T, H, W)
    pixels = int(missing.sum()) * pred.shape[-1] * pred.shape[-2]
    return int(wrong[missing].sum()), pixels


def hamming(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of incorrect pixels over unobserved frames (NaN if every frame is observed)."""
    wrong, pixels = hamming_counts(pred, target, mask)
    return wrong / pixels if pixels else float("nan")


def hamming_per_frame(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, T) fraction of incorrect pixels of each frame."""
    return ((pred > 0.5) != (target > 0.5)).mean(axis=(-2, -1))


def static_background(frames: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels lit in every frame (the walls), from (N, T, H, W) frames."""
    return (frames > 0.5).all(axis=(0, 1))


def centroids(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(N, T, 2) x, y of the foreground pixels that are not background, in pixel units (the
    centre of pixel (r, c) is (c + 0.5, r + 0.5)); NaN where a frame shows no such pixel."""
    fg = (frames > 0.5) & ~background
    h, w = frames.shape[-2:]
    count = fg.sum(axis=(-2, -1)).astype(np.float64)
    xs = (fg * (np.arange(w) + 0.5)).sum(axis=(-2, -1))
    ys = (fg * (np.arange(h)[:, None] + 0.5)).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([xs / count, ys / count], -1)


def position_errors(pred_frames: np.ndarray, true_xy: np.ndarray,
                    background: np.ndarray) -> np.ndarray:
    """(N, T) distance in pixels between the ball read off the predicted frames (centroid) and
    the true position; NaN where the prediction shows no ball."""
    c = centroids(pred_frames, background)
    return np.linalg.norm(c - true_xy, axis=-1)


def max_pairwise_hamming(frames: np.ndarray) -> float:
    """The 2017 code's scale reference: per sequence, the largest Hamming distance between two
    of its frames, averaged over sequences."""
    b = (frames > 0.5).reshape(*frames.shape[:2], -1)  # (N, T, P)
    out = []
    for seq in b:
        d = (seq[:, None, :] != seq[None, :, :]).mean(-1)
        out.append(d.max())
    return float(np.mean(out))


def linear_probe_r2(train_codes: np.ndarray, train_xy: np.ndarray, test_codes: np.ndarray,
                    test_xy: np.ndarray) -> float:
    """R^2 on the test set of a least-squares linear map (with bias) from codes (M, A) to
    positions (M, 2), fitted on the training codes: how linearly the latent space encodes
    the physical position."""
    X = np.c_[train_codes, np.ones(len(train_codes))]
    W, *_ = np.linalg.lstsq(X, train_xy, rcond=None)
    pred = np.c_[test_codes, np.ones(len(test_codes))] @ W
    ss_res = ((test_xy - pred) ** 2).sum()
    ss_tot = ((test_xy - test_xy.mean(0)) ** 2).sum()
    return float(1 - ss_res / ss_tot)
