"""Signs that a run did not learn its data, read off its metrics.json (no torch).

A run that diverged, whose auto-encoder stopped encoding the frames, that is stuck at the
average frame, or whose imputation is barely better than drawing the static scene, still gets
numbers from `evaluate`; averaged into a table they look like a weak model. These checks find
such runs, so that `evaluate`, `benchmark` and `report` say so beside the numbers. They judge
a run against its own data's trivial predictor, not against other models or seeds, so a model
nobody has seen before is checked the same way. A run they flag is investigated and fixed, or
excluded with an EXCLUDED.md that gives the reason, or (where a table's measure is not the one
that failed, as the test ELBO of the paper's Table 1; results/NOTES.md says where) published
with its flag in the report's list; it is never dropped silently.
"""

from __future__ import annotations

import math
import numbers

NEAR_TRIVIAL = 0.9  # an imputation at least 0.9 of the trivial predictor's Hamming
NO_OBJECT = 0.5  # an imputation that draws no object in half of the missing frames
RECONSTRUCTION = 0.5  # a reconstruction half as wrong as the trivial predictor's frames
LEVEL = ("random", 0.5)  # the headline level checked


def _finite(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)


def _at_level(row: dict) -> bool:
    return row.get("protocol") == LEVEL[0] and isinstance(row.get("level"), numbers.Real) \
        and math.isclose(row["level"], LEVEL[1])


def run_warnings(m: dict) -> list[str]:
    """One line per failed check of a run's metrics (an empty list: none failed)."""
    out = []
    # metrics.json writes NaN and inf as null: a null ELBO term or reconstruction is one
    # (a model without an ELBO or reconstruct() has no such key)
    scores = [r.get("hamming") for r in m.get("imputation", [])]
    scores += list((m.get("generation") or {}).get("hamming_per_step") or [])
    scores += list((m.get("elbo") or {}).values())
    if "reconstruction_hamming" in m:
        scores.append(m["reconstruction_hamming"])
    bad = sum(not _finite(v) for v in scores)
    if bad:
        out.append(f"{bad} of its {len(scores)} scores {'is' if bad == 1 else 'are'} not "
                   "finite (NaN or inf, null in metrics.json): it diverged")
    trivial_name = m.get("trivial", "trivial")
    trivial = [r.get("hamming") for r in m.get("trivial_predictor", []) if _at_level(r)]
    t = trivial[0] if trivial else None
    for r in m.get("imputation", []):
        if not _at_level(r):
            continue
        h, where = r.get("hamming"), f"{r['method']} imputes random p = {LEVEL[1]:g}"
        gone = r.get("no_ball_fraction")
        if _finite(t) and t > 0 and _finite(h) and h >= NEAR_TRIVIAL * t:
            pe = r.get("position_error")
            drawn = _finite(pe) and _finite(gone) and gone < NO_OBJECT
            out.append(f"{where} at Hamming {h:.4f}, {h / t:.2f} of the trivial predictor "
                       f"{trivial_name}'s {t:.4f}: barely better than drawing the static "
                       "scene, or worse"
                       + (f" (position error {pe:.2f} px: the object is drawn, but off)"
                          if drawn else ""))
        if _finite(gone) and gone >= NO_OBJECT:
            out.append(f"{where} with no object in {gone:.0%} of the missing frames: "
                       "collapse, or the average frame")
    scene = max((r.get("hamming") for r in m.get("trivial_predictor", [])
                 if _finite(r.get("hamming"))), default=None)
    rec = m.get("reconstruction_hamming")
    if scene and _finite(rec) and rec >= RECONSTRUCTION * scene:
        out.append(f"reconstructs its input at Hamming {rec:.4f}, {rec / scene:.2f} of the "
                   f"trivial predictor {trivial_name}'s {scene:.4f}: the codes do not "
                   "encode the frames")
    return out
