"""Signs that a run did not learn its data, read off its metrics.json (no torch).

A run that collapsed (its auto-encoder stopped encoding the frames), that is stuck at the
average frame, or whose imputation is no better than drawing the static scene, still gets
numbers from `evaluate`; averaged into a table they look like a weak model. These checks find
such runs, so that `evaluate`, `benchmark` and `report` say so beside the numbers. They judge
a run against its own data's trivial predictor, not against other models or seeds, so a model
nobody has seen before is checked the same way. A run they flag is investigated and fixed, or
excluded with an EXCLUDED.md that gives the reason; it is never dropped silently.
"""

from __future__ import annotations

import math

NEAR_TRIVIAL = 0.9  # an imputation within 10% of the trivial predictor's Hamming
RECONSTRUCTION = 0.5  # a reconstruction half as wrong as the trivial predictor's frames
NO_OBJECT = 0.5  # an imputation that draws no object in half of the missing frames
LEVEL = ("random", 0.5)  # the headline level checked


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def run_warnings(m: dict) -> list[str]:
    """One line per failed check of a run's metrics (an empty list: none failed)."""
    out = []
    scores = [r.get("hamming") for r in m.get("imputation", [])]
    gen = m.get("generation") or {}
    scores += list(gen.get("hamming_per_step") or [])
    scores += [v for v in (m.get("elbo") or {}).values() if v is not None]
    if m.get("reconstruction_hamming") is not None:
        scores.append(m["reconstruction_hamming"])
    bad = sum(not _finite(v) for v in scores)
    if bad:
        out.append(f"{bad} of its {len(scores)} scores are not finite (NaN or inf): it "
                   "diverged or its outputs are not probabilities")
    trivial_name = m.get("trivial", "trivial")
    trivial = {(r["protocol"], r["level"]): r.get("hamming")
               for r in m.get("trivial_predictor", [])}
    t = trivial.get(LEVEL)
    for r in m.get("imputation", []):
        if (r["protocol"], r["level"]) != LEVEL:
            continue
        h, where = r.get("hamming"), f"{r['method']} imputes random p = {LEVEL[1]:g}"
        if _finite(t) and t > 0 and _finite(h) and h >= NEAR_TRIVIAL * t:
            pe = r.get("position_error")
            out.append(f"{where} at Hamming {h:.4f}, {h / t:.2f} of the trivial predictor "
                       f"`{trivial_name}`'s {t:.4f}: no better than drawing the static scene"
                       + (f" (position error {pe:.2f} px: the object is drawn, but off)"
                          if _finite(pe) else ""))
        gone = r.get("no_ball_fraction")
        if _finite(gone) and gone >= NO_OBJECT:
            out.append(f"{where} with no object in {gone:.0%} of the missing frames: "
                       "collapse, or the average frame")
    scene = max((v for v in trivial.values() if _finite(v)), default=None)
    rec = m.get("reconstruction_hamming")
    if scene and _finite(rec) and rec >= RECONSTRUCTION * scene:
        out.append(f"reconstructs its input at Hamming {rec:.4f}, {rec / scene:.2f} of the "
                   f"trivial predictor `{trivial_name}`'s {scene:.4f}: the codes do not "
                   "encode the frames")
    return out
