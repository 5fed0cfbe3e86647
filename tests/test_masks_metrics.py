"""Masks (exact, deterministic, identical across models) and metrics on hand-made cases."""

import numpy as np
import pytest

from kvae_bench import masks, metrics


def test_random_mask_protocol():
    m = masks.random_mask(500, 20, 0.5, seed=3)
    assert m.shape == (500, 20) and m.dtype == np.float32
    assert np.all(m[:, :4] == 1)
    assert set(np.unique(m)) == {0.0, 1.0}
    assert abs((m[:, 4:] == 0).mean() - 0.5) < 0.03
    np.testing.assert_array_equal(m, masks.random_mask(500, 20, 0.5, seed=3))
    assert not np.array_equal(m, masks.random_mask(500, 20, 0.5, seed=4))
    assert not np.array_equal(m, masks.random_mask(500, 20, 0.6, seed=3))
    assert np.all(masks.random_mask(10, 20, 1.0)[:, 4:] == 0)
    assert np.all(masks.random_mask(10, 20, 0.0) == 1)


def test_planning_mask_protocol():
    m = masks.planning_mask(3, 20, 5)
    expect = np.ones(20, np.float32)
    expect[4:9] = 0
    np.testing.assert_array_equal(m, np.tile(expect, (3, 1)))
    with pytest.raises(ValueError, match="k must be"):
        masks.planning_mask(3, 20, 17)
    assert masks.levels("planning", 20) == (1, 3, 5, 7, 9, 11, 13, 15)
    assert masks.levels("planning", 10) == (1, 3, 5)


def test_masks_are_the_same_for_every_caller_and_fingerprinted():
    a = masks.make_mask("random", 0.3, 100, 20, seed=0)
    b = masks.make_mask("random", 0.3, 100, 20, seed=0)
    np.testing.assert_array_equal(a, b)
    assert masks.fingerprint(100, 20) == masks.fingerprint(100, 20)
    assert masks.fingerprint(100, 20) != masks.fingerprint(100, 20, seed=1)
    with pytest.raises(ValueError, match="unknown protocol"):
        masks.make_mask("sometimes", 1, 2, 20)


def test_hamming_counts_only_unobserved_frames():
    target = np.zeros((1, 3, 2, 2))
    pred = np.zeros((1, 3, 2, 2))
    pred[0, 0] = 1.0  # all wrong, but observed: not counted
    pred[0, 1, 0, 0] = 0.9  # one wrong pixel of 4 in a missing frame
    pred[0, 2, 1, 1] = 0.4  # below the threshold: correct
    mask = np.array([[1, 0, 0]], np.float32)
    assert metrics.hamming_counts(pred, target, mask) == (1, 8)
    assert metrics.hamming(pred, target, mask) == pytest.approx(1 / 8)
    assert np.isnan(metrics.hamming(pred, target, np.ones((1, 3))))
    np.testing.assert_allclose(metrics.hamming_per_frame(pred, target), [[1.0, 0.25, 0.0]])


def test_centroid_position_error_and_background():
    frames = np.zeros((1, 2, 8, 8))
    frames[..., 0, :] = 1  # a wall in every frame
    frames[0, 0, 2:4, 4:6] = 1  # a 2x2 ball around pixel centre (5, 3)
    bg = metrics.static_background(frames)
    assert bg[0].all() and bg.sum() == 8
    c = metrics.centroids(frames, bg)
    np.testing.assert_allclose(c[0, 0], [5.0, 3.0])
    assert np.isnan(c[0, 1]).all()  # no ball in frame 1
    err = metrics.position_errors(frames, np.array([[[5.0, 7.0], [1.0, 1.0]]]), bg)
    assert err[0, 0] == pytest.approx(4.0) and np.isnan(err[0, 1])


def test_max_pairwise_hamming_and_probe():
    frames = np.zeros((2, 3, 2, 2))
    frames[0, 2] = 1
    assert metrics.max_pairwise_hamming(frames) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(200, 2))
    xy = codes @ np.array([[2.0, 0.5], [-1.0, 1.0]]) + 3.0
    assert metrics.linear_probe_r2(codes, xy, codes, xy) == pytest.approx(1.0)
    assert metrics.linear_probe_r2(codes, xy, codes, rng.normal(size=(200, 2))) < 0.1
