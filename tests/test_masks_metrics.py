"""Masks (exact, deterministic, identical across models) and metrics on hand-made cases."""

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kvae_bench import masks, metrics

FEW = settings(max_examples=30, deadline=None)


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


# ---- masks: the published set, boundaries, defaults -------------------------------------------

def test_published_masks_are_reproduced():
    # results/summary.json: every published run was scored on the masks of its 1000 test
    # sequences of 20 frames with mask seed 0; changing how masks are drawn breaks comparability
    assert masks.fingerprint(1000, 20, 0) == (
        "29ba9c875260c2bb1423fdeee85ca90a7c93fbedc9931fafa765e0a77d091f2f")


def test_mask_seed_defaults_to_zero():
    np.testing.assert_array_equal(masks.random_mask(50, 10, 0.5),
                                  masks.random_mask(50, 10, 0.5, seed=0))
    np.testing.assert_array_equal(masks.make_mask("random", 0.5, 50, 10),
                                  masks.make_mask("random", 0.5, 50, 10, seed=0))
    assert masks.fingerprint(20, 10) == masks.fingerprint(20, 10, seed=0)


def test_make_mask_random_uses_the_level_as_drop_rate():
    m = masks.make_mask("random", 0.5, 400, 24, seed=7)
    assert m.dtype == np.float32
    assert abs((m[:, 4:] == 0).mean() - 0.5) < 0.03
    assert np.all(masks.make_mask("random", 1.0, 5, 10, seed=7)[:, 4:] == 0)
    np.testing.assert_array_equal(masks.make_mask("random", 0.5, 400, 24, seed=7),
                                  masks.random_mask(400, 24, 0.5, seed=7))


@pytest.mark.parametrize("p", [-0.1, 1.5, 2.0])
def test_random_mask_rejects_p_outside_unit_interval(p):
    with pytest.raises(ValueError) as e:
        masks.random_mask(3, 10, p)
    assert str(p) in str(e.value)  # names the offending value


def test_planning_mask_accepts_k_from_zero_to_all_later_frames():
    none = masks.planning_mask(2, 10, 0)
    assert none.dtype == np.float32 and none.shape == (2, 10) and np.all(none == 1)
    full = masks.planning_mask(2, 10, 6)
    assert full.dtype == np.float32
    np.testing.assert_array_equal(full, [[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]] * 2)
    assert masks.make_mask("planning", 6, 2, 10).dtype == np.float32


@pytest.mark.parametrize("k", [-1, 17])
def test_planning_mask_rejects_k_out_of_range_naming_the_range(k):
    with pytest.raises(ValueError) as e:
        masks.planning_mask(3, 20, k)
    words = re.findall(r"-?\d+", str(e.value))
    assert "16" in words and str(k) in words  # largest valid k for 20 frames, and the bad k


def test_planning_levels_include_the_longest_gap_that_fits():
    assert masks.levels("planning", 9) == (1, 3, 5)
    assert masks.levels("planning", 19) == masks.PLANNING_LEVELS
    assert masks.levels("planning", 4) == ()
    assert masks.levels("random", 5) == masks.RANDOM_LEVELS
    for k in masks.levels("planning", 11):
        masks.make_mask("planning", k, 1, 11)  # every listed level is valid


def test_unknown_protocol_names_the_valid_ones():
    with pytest.raises(ValueError) as e:
        masks.make_mask("sometimes", 1, 2, 20)
    words = re.findall(r"\w+", str(e.value))
    assert "sometimes" in words and "random" in words and "planning" in words


# ---- masks: laws --------------------------------------------------------------------------------

_protocol_level = st.one_of(
    st.tuples(st.just("random"), st.sampled_from(masks.RANDOM_LEVELS)),
    st.tuples(st.just("planning"), st.sampled_from(masks.PLANNING_LEVELS)))


@FEW
@given(pl=_protocol_level, n=st.integers(1, 6), extra=st.integers(0, 6),
       seed=st.integers(0, 2**32 - 1))
def test_masks_are_deterministic_binary_and_observe_the_first_frames(pl, n, extra, seed):
    protocol, level = pl
    steps = masks.T_INIT + (level if protocol == "planning" else 1) + extra
    m = masks.make_mask(protocol, level, n, steps, seed)
    assert m.shape == (n, steps) and m.dtype == np.float32
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert np.all(m[:, :masks.T_INIT] == 1)
    np.testing.assert_array_equal(m, masks.make_mask(protocol, level, n, steps, seed))


@FEW
@given(p=st.sampled_from(masks.RANDOM_LEVELS[:-1]), seeds=st.lists(
    st.integers(0, 2**32 - 1), min_size=2, max_size=2, unique=True))
def test_random_masks_differ_between_seeds(p, seeds):
    a, b = (masks.make_mask("random", p, 20, 20, s) for s in seeds)
    assert not np.array_equal(a, b)


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_random_mask_drop_rate_is_close_to_p(p, seed):
    m = masks.random_mask(1000, 24, p, seed)  # 20000 later frames: sd of the rate < 0.004
    assert abs((m[:, masks.T_INIT:] == 0).mean() - p) < 0.02


@FEW
@given(steps=st.integers(masks.T_INIT, 25), data=st.data())
def test_planning_masks_drop_exactly_k_frames_and_nest_across_k(steps, data):
    k1 = data.draw(st.integers(0, steps - masks.T_INIT))
    k2 = data.draw(st.integers(k1, steps - masks.T_INIT))
    a, b = masks.planning_mask(3, steps, k1), masks.planning_mask(3, steps, k2)
    assert np.all((a == 0).sum(1) == k1)
    assert np.all(b <= a)  # missing at k1 => missing at k2 >= k1
    gap = np.flatnonzero(b[0] == 0)
    np.testing.assert_array_equal(gap, np.arange(masks.T_INIT, masks.T_INIT + k2))


# ---- metrics: hand-made cases -------------------------------------------------------------------

def test_probability_of_exactly_one_half_is_background():
    half = np.full((1, 2, 2, 2), 0.5)
    zero = np.zeros_like(half)
    missing = np.zeros((1, 2), np.float32)
    assert metrics.hamming_counts(half, zero, missing) == (0, 8)
    assert metrics.hamming_counts(zero, half, missing) == (0, 8)
    np.testing.assert_array_equal(metrics.hamming_per_frame(half, zero), [[0.0, 0.0]])
    np.testing.assert_array_equal(metrics.hamming_per_frame(zero, half), [[0.0, 0.0]])
    assert not metrics.static_background(half).any()
    assert np.isnan(metrics.centroids(half, np.zeros((2, 2), bool))).all()
    assert metrics.max_pairwise_hamming(np.concatenate([half, zero], 1)) == 0.0


def test_hamming_on_lit_targets_and_non_square_frames():
    target = np.zeros((1, 2, 2, 3))
    target[0, 1, 0, :2] = 1.0  # a 2-pixel ball in the missing frame
    pred = np.zeros_like(target)
    pred[0, 1, 0, 1:] = 0.8  # overlaps one ball pixel, adds one: 2 wrong of 6
    mask = np.array([[1, 0]], np.float32)
    assert metrics.hamming_counts(pred, target, mask) == (2, 6)
    assert metrics.hamming(pred, target, mask) == pytest.approx(1 / 3)
    np.testing.assert_allclose(metrics.hamming_per_frame(pred, target), [[0.0, 1 / 3]])
    assert metrics.hamming_counts(target, target, mask) == (0, 6)
    np.testing.assert_array_equal(metrics.hamming_per_frame(target, target), [[0.0, 0.0]])


def test_centroids_of_empty_frames_are_nan_without_warnings():
    frames = np.zeros((2, 3, 4, 4))
    frames[1, 2, 1, 3] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = metrics.centroids(frames, np.zeros((4, 4), bool))
        err = metrics.position_errors(frames, np.zeros((2, 3, 2)), np.zeros((4, 4), bool))
    assert np.isnan(c[0]).all() and np.isnan(c[1, :2]).all()
    np.testing.assert_allclose(c[1, 2], [3.5, 1.5])
    assert np.isnan(err[0]).all() and err[1, 2] == pytest.approx(np.hypot(3.5, 1.5))


def test_centroids_non_square_frames_skip_background():
    frames = np.zeros((1, 1, 3, 5))
    frames[0, 0, 0, 4] = 1.0  # background pixel: ignored
    frames[0, 0, 2, 0] = 1.0
    frames[0, 0, 2, 2] = 1.0  # centres (0.5, 2.5) and (2.5, 2.5): mean (1.5, 2.5)
    bg = np.zeros((3, 5), bool)
    bg[0, 4] = True
    np.testing.assert_allclose(metrics.centroids(frames, bg)[0, 0], [1.5, 2.5])


def test_max_pairwise_hamming_counts_whole_frames():
    frames = np.zeros((2, 3, 2, 2))
    frames[0, 1, 0, :] = 1.0  # one lit row: 2 of 4 pixels differ from frame 0
    frames[0, 2, 0, 0] = 1.0  # 1 of 4 from frame 0, 1 of 4 from frame 1
    # sequence 0: largest distance 0.5; sequence 1 (all frames equal): 0
    assert metrics.max_pairwise_hamming(frames) == pytest.approx(0.25)


def test_linear_probe_r2_on_a_hand_computed_case():
    train_codes = np.array([[0.0], [1.0], [2.0], [3.0]])
    train_xy = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # xy = (c, 2c)
    test_codes = np.array([[0.0], [2.0]])  # predicted (0, 0) and (2, 4)
    test_xy = np.array([[0.0, 1.0], [2.0, 3.0]])
    # residuals (0, -1), (0, 1): 2; around the per-column mean (1, 2): 1+1+1+1 = 4
    r2 = metrics.linear_probe_r2(train_codes, train_xy, test_codes, test_xy)
    assert r2 == pytest.approx(0.5)
    shifted = test_xy + np.array([[0.0, 10.0]])  # constant offset in y: residuals 11, 9
    assert metrics.linear_probe_r2(train_codes, train_xy, test_codes, shifted) == (
        pytest.approx(1 - (121 + 81) / 4))


# ---- metrics: laws ------------------------------------------------------------------------------

_pixel = st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0])


@st.composite
def _scored(draw):
    n, t, h, w = (draw(st.integers(1, 3)) for _ in range(4))
    pred = draw(hnp.arrays(np.float64, (n, t, h, w), elements=_pixel))
    target = draw(hnp.arrays(np.float64, (n, t, h, w), elements=_pixel))
    mask = draw(hnp.arrays(np.float32, (n, t), elements=st.sampled_from([0.0, 1.0])))
    return pred, target, mask


@FEW
@given(case=_scored())
def test_hamming_laws(case):
    pred, target, mask = case
    wrong, pixels = metrics.hamming_counts(pred, target, mask)
    assert pixels == int((mask == 0).sum()) * pred.shape[2] * pred.shape[3]
    assert 0 <= wrong <= pixels
    assert metrics.hamming_counts(target, pred, mask) == (wrong, pixels)
    assert metrics.hamming_counts(pred, pred, mask) == (0, pixels)
    h = metrics.hamming(pred, target, mask)
    if pixels:
        assert h == wrong / pixels and 0 <= h <= 1
        assert h == pytest.approx(metrics.hamming_per_frame(pred, target)[mask == 0].mean())
        assert metrics.hamming(pred, pred, mask) == 0.0
    else:
        assert np.isnan(h)
    per = metrics.hamming_per_frame(pred, target)
    np.testing.assert_array_equal(per, metrics.hamming_per_frame(target, pred))
    assert per.shape == mask.shape and np.all((per >= 0) & (per <= 1))


@FEW
@given(a=_scored(), b=_scored())
def test_hamming_counts_accumulate_over_sequences(a, b):
    (pa, ta, ma), (pb, tb, mb) = a, b
    if pa.shape[1:] != pb.shape[1:]:
        return
    joined = metrics.hamming_counts(np.concatenate([pa, pb]), np.concatenate([ta, tb]),
                                    np.concatenate([ma, mb]))
    ca, cb = metrics.hamming_counts(pa, ta, ma), metrics.hamming_counts(pb, tb, mb)
    assert joined == (ca[0] + cb[0], ca[1] + cb[1])


@FEW
@given(h=st.integers(1, 8), w=st.integers(1, 8), data=st.data())
def test_centroid_of_a_single_lit_pixel_is_its_centre(h, w, data):
    r, c = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    frames = np.zeros((1, 2, h, w))
    frames[0, 1, r, c] = data.draw(st.floats(0.51, 1.0))
    bg = np.zeros((h, w), bool)
    got = metrics.centroids(frames, bg)
    np.testing.assert_array_equal(got[0, 1], [c + 0.5, r + 0.5])
    assert np.isnan(got[0, 0]).all()
    bg[r, c] = True
    assert np.isnan(metrics.centroids(frames, bg)[0, 1]).all()
