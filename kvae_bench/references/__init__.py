"""Published numbers and claims as data, shipped with the package.

    datasets.csv the canonical data sets and their fingerprints (kvae_bench.datasets)
    *.csv        (the others) reference values: env, model, method, protocol, level,
                 metric, value, source, how (how the number was obtained, e.g. "read off the
                 plot")
    claims.toml  claims to check on our table (kinds documented in the file)

A new reference or claim is a line of data, not code. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import csv
import functools
import tomllib
from importlib import resources

REFERENCE_COLUMNS = ("env", "model", "method", "protocol", "level", "metric", "value", "source",
                     "how")
CLAIM_KINDS = ("within_reference", "below", "ratio_vs_reference")


def parse_level(text: str) -> int | float | None:
    """Levels are numbers: "1" -> 1, "0.5" -> 0.5, "" -> None (a scalar metric)."""
    text = str(text).strip()
    if not text:
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def level_key(level) -> int | float:
    """A level's sort and match key: the number itself (1 == 1.0 as a key), scalar metrics
    (None) first."""
    return float("-inf") if level is None or level == "" else level


def load_references() -> list[dict]:
    """Every reference row of every CSV file in this package, level parsed, value a float."""
    rows = []
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".csv") or entry.name == "datasets.csv":
            continue
        with entry.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != REFERENCE_COLUMNS:
                raise ValueError(f"references/{entry.name}: columns must be "
                                 f"{','.join(REFERENCE_COLUMNS)}")
            for row in reader:
                rows.append({**row, "level": parse_level(row["level"]),
                             "value": float(row["value"])})
    return rows


DATASET_COLUMNS = ("name", "env", "preset", "n_train", "n_val", "n_test", "steps", "seed",
                   "fingerprint", "prefix_train", "prefix_val", "prefix_test",
                   "prefix_fingerprint")


@functools.cache
def datasets_csv() -> dict[str, dict]:
    """name -> row of datasets.csv (strings): the canonical data sets, each an env (and preset)
    at its default parameters and sizes (n_train, n_val, n_test, steps, seed), with
    `fingerprint` (kvae_bench.h5io.fingerprint of the file `generate` makes) and
    `prefix_fingerprint`, that of the same command with only prefix_train, prefix_val and
    prefix_test sequences (sequence i depends only on (seed, split, i), so that file is the
    canonical one's first sequences: a quick check of the generators). Read once; do not
    modify the result."""
    with resources.files(__package__).joinpath("datasets.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != DATASET_COLUMNS:
            raise ValueError(f"references/datasets.csv: columns must be "
                             f"{','.join(DATASET_COLUMNS)}")
        return {r["name"]: r for r in reader}


def load_claims() -> list[dict]:
    claims = tomllib.loads(resources.files(__package__).joinpath("claims.toml").read_text())
    out = claims.get("claim", [])
    for c in out:
        if c.get("kind") not in CLAIM_KINDS:
            raise ValueError(f"references/claims.toml: kind {c.get('kind')!r} is not one of "
                             f"{', '.join(CLAIM_KINDS)}")
    return out


def _series(claim: dict) -> list[str]:
    return [claim["series"], *claim.get("others", []), *([claim["over"]] if "over" in claim
                                                          else [])]


def _claim_at(c: dict, our: dict, ref: dict) -> tuple[float | None, bool | None]:
    """(value, holds) of claim c at one level; our/ref: series -> mean or None."""
    series = c["series"]
    if c["kind"] == "within_reference":
        if our[series] is None or not ref[series]:
            return None, None
        value = our[series] / ref[series]
        return value, value <= 1 + c.get("tolerance", 0.0)
    if c["kind"] == "below":
        others = [our[o] for o in c["others"]]
        if our[series] is None or any(o is None for o in others):
            return our[series], None
        return our[series], our[series] < min(others)
    mine, over = our[series], our[c["over"]]
    if mine is None or not over or ref[series] is None or not ref[c["over"]]:
        return None, None
    return mine / over, mine / over <= ref[series] / ref[c["over"]]


def check_claims(claims: list[dict], ours: dict, refs: dict) -> list[dict]:
    """Evaluate claims level by level.

    ours: (env, "model/method", protocol, level key, metric) -> our mean;
    refs: the same keys -> reference value.
    Returns one dict per claim: its fields plus `levels` = [{protocol, level, value, ok,
    counted}] (value: the ratio, or our series' mean for `below`; ok None where a value is
    missing) and `passed` / `counted` (over the counted levels with a known outcome).
    """
    results = []
    for c in claims:
        env, metric, series = c["env"], c["metric"], c["series"]
        keys = sorted({(k[2], k[3]) for k in refs if k[0] == env and k[1] == series
                       and k[4] == metric})
        levels = []
        for protocol, lvl in keys:
            at = (protocol, lvl, metric)
            value, ok = _claim_at(c, {s: ours.get((env, s, *at)) for s in _series(c)},
                                  {s: refs.get((env, s, *at)) for s in _series(c)})
            counted = lvl in {level_key(v) for v in c.get("count_levels", {}).get(protocol, [])}
            levels.append({"protocol": protocol, "level": lvl, "value": value, "ok": ok,
                           "counted": counted})
        known = [lv for lv in levels if lv["counted"] and lv["ok"] is not None]
        if any(lv["value"] is not None for lv in levels):
            results.append({**c, "levels": levels, "passed": sum(lv["ok"] for lv in known),
                            "counted": len(known)})
    return results
