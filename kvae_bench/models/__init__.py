"""The model registry: built-in models and models from outside, found the same way.

A model is named by
    - a registered name: the built-ins below, or an entry point of the group
      `kvae_bench.models` in an installed package (`name = "package.module:Class"`);
    - `package.module:Class`: anything importable.
It must follow kvae_bench.models.protocol (loss, impute, generate; the rest optional) and is
built as Class(image_size=H, **options). Its options are the fields of its `Config` dataclass
if it declares one, else its constructor's keyword arguments; command-line strings are typed
from the defaults, and unknown options are rejected with the valid list.

Adding a built-in model: one file under models/ and one line in BUILTIN.
Importing this module imports no model code (and no torch): names resolve lazily.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
from dataclasses import dataclass
from importlib import metadata

from kvae_bench.models.protocol import missing_methods
from kvae_bench.rundir import SAFE_NAME

ENTRY_POINT_GROUP = "kvae_bench.models"
DEFAULT = "kvae"  # what `train` trains when no --model is given
BUILTIN = {
    "kvae": "kvae_bench.models.kvae:KVAE",
    "kvae-mlp": "kvae_bench.models.kvae:KVAEMLP",
    "ae_rnn": "kvae_bench.models.ae_rnn:AERNN",
    "vae_rnn": "kvae_bench.models.vae_rnn:VAERNN",
    "dmm": "kvae_bench.models.dmm:DMM",
    "dvbf": "kvae_bench.models.dvbf:DVBF",
}


VARIANTS = {"kvae-mlp"}  # built-in variants a grid runs only when named in --models


def grid_default() -> list[str]:
    """The models `benchmark` runs without --models: every registered one but the variants."""
    return [name for name in registered() if name not in VARIANTS]


def registered() -> dict[str, str]:
    """Every registered name -> "module:Class": the built-ins, then installed entry points."""
    names = dict(BUILTIN)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, ep.value)
    return names


@dataclass(frozen=True)
class Option:
    name: str
    default: object  # inspect.Parameter.empty: required
    kind: type


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: its name in tables, its class, its options and where it came from."""

    name: str
    target: str  # "module:Class"
    cls: type
    options: dict  # name -> Option

    @property
    def source(self) -> dict:
        """Module, distribution and version of the model's code, for the run's provenance."""
        module = self.cls.__module__
        dist, version = "", ""
        for name, dists in metadata.packages_distributions().items():
            if name == module.split(".")[0]:
                dist = dists[0]
                try:
                    version = metadata.version(dist)
                except metadata.PackageNotFoundError:
                    pass
                break
        return {"target": self.target, "module": module, "distribution": dist,
                "version": version}


def resolve(name: str) -> ModelSpec:
    """The model called `name` (a registered name or module:Class). ValueError names what is
    wrong: unknown name (with the valid ones), not importable, a missing core method, or a
    table name that is not a plain name or is another registered model's."""
    known = registered()
    by_target = {target: n for n, target in known.items()}
    if name in known:
        target, display = known[name], name
    elif ":" in name:
        target, display = name, by_target.get(name)
    else:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(known)} or "
                         "package.module:Class")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised while importing it
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"model {name!r}: cannot import {module_name} ({type(e).__name__}: "
                         f"{reason}); is it installed or on PYTHONPATH?") from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise ValueError(f"model {name!r}: {module_name} has no class {attr!r}")
    missing = missing_methods(cls)
    if missing:
        raise ValueError(f"model {name!r} ({target}) lacks {', '.join(missing)}: a model needs "
                         "loss(x, mask), impute(x, mask) and generate(x, n_observed, steps)")
    if display is None:  # from outside: the class's own `name`, else the class name
        display = getattr(cls, "name", attr)
        if not isinstance(display, str) or not SAFE_NAME.fullmatch(display):
            raise ValueError(f"model {name!r}: its name {display!r} is not a plain name "
                             "(letters, digits, . _ @ + -): set the class attribute `name`")
        if display in known:
            raise ValueError(f"model {name!r}: its name {display!r} is the registered model "
                             f"{known[display]}'s: give the class another `name`")
    return ModelSpec(display, target, cls, _options(cls))


def _options(cls: type) -> dict:
    config = getattr(cls, "Config", None)
    if dataclasses.is_dataclass(config):
        return {f.name: Option(f.name, f.default, type(f.default))
                for f in dataclasses.fields(config)}
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    out = {}
    for p in params:
        if p.name == "image_size" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = type(p.default) if p.default not in (p.empty, None) else (
            p.annotation if p.annotation in (int, float, str, bool) else str)
        out[p.name] = Option(p.name, p.default, kind)
    return out


def coerce(option: Option, value):
    """value (a command-line string or a TOML/JSON value) as the option's type; numbers
    finite. ValueError names the option."""
    kind = option.kind
    if isinstance(value, str) and kind is not str:
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            value = kind(value)
        except ValueError:
            raise ValueError(f"option {option.name}={value!r}: expected {kind.__name__}"
                             ) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"option {option.name}={value!r}: expected {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"option {option.name}={value!r}: expected a finite number")
    return value


def resolve_options(spec: ModelSpec, values: dict) -> dict:
    """Every option of the model: the defaults with `values` (typed) over them."""
    unknown = sorted(set(values) - set(spec.options))
    if unknown:
        raise ValueError(f"unknown {spec.name} option(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(sorted(spec.options))}")
    out = {}
    for name, opt in spec.options.items():
        if name in values:
            out[name] = coerce(opt, values[name])
        elif opt.default is inspect.Parameter.empty:
            raise ValueError(f"{spec.name} needs option {name}: give it with --set {name}=...")
        else:
            out[name] = opt.default
    return out


def build(name: str | ModelSpec, image_size: int, options: dict | None = None):
    """The model `name` for frames of image_size, with options (strings are typed)."""
    spec = name if isinstance(name, ModelSpec) else resolve(name)
    return spec.cls(image_size=image_size, **resolve_options(spec, options or {}))
