"""One training loop for every model: seeded, resumable, checkpointed every epoch.

The run folder (config.json, log.jsonl, ckpt.pt) is kvae_bench.rundir's: see there.

Every random choice flows from the seed: the model's initialisation from torch.manual_seed(seed),
and epoch e's shuffling and noise from generators seeded by (seed, e). So a run killed at any
point and resumed from its checkpoint ends with the same weights as one that ran straight through
(the checkpoint needs no RNG state).

`--resume` takes the options saved in config.json; options given again replace them (training
options only: the model, its architecture, the seed and the data stay) and are listed in the
config's `changes`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from kvae_bench import graphstep, masks, models, rundir, runinfo
from kvae_bench.data import VideoSplit, fingerprint, locate_data
from kvae_bench.errors import UserError
from kvae_bench.models.protocol import epoch_schedule

log = logging.getLogger(__name__)
DEFAULT_DATA = Path("data/box.h5")


@dataclass(frozen=True)
class TrainConfig:
    """Training options; defaults are the paper's (Adam 0.007, x0.85 every 20 epochs, 80 epochs,
    batch 32, clip 150) plus a linear learning-rate warm-up over the first 156 steps."""

    epochs: int = 80
    batch_size: int = 32
    lr: float = 0.007
    lr_decay: float = 0.85
    lr_decay_every: int = 20  # epochs
    warmup_steps: int = 156  # linear lr warm-up (one epoch of box); without it Adam at 0.007
    # killed the encoder within 75 steps in measured runs (log p(x|a) stuck at -102.5)
    grad_clip: float = 150.0
    train_miss_prob: float = 0.0  # drop each frame after the first t_init with this probability
    train_gap_prob: float = 0.0  # instead, give a sequence one gap with this probability: a
    # length uniform in 1 .. T - t_init, then a start uniform where it fits after t_init
    t_init: int = 4
    train_limit: int = 0  # use only the first N training sequences (0: all)
    eval_limit: int = 0  # score the test ELBO on the first N test sequences (0: all)
    max_bad_steps: int = 20  # consecutive non-finite steps before the run stops
    cuda_graph: bool = True  # on a GPU: the step as one CUDA graph (kvae_bench.graphstep)

    def validate(self) -> None:
        """Raise ValueError naming the first option out of its range."""
        for name in ("epochs", "batch_size", "lr_decay_every", "t_init"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "train_limit", "eval_limit", "max_bad_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = {'all' if 'limit' in name else 'none'}"
                                 f"), got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.train_miss_prob < 1:
            raise ValueError(f"train_miss_prob must be in [0, 1), got {self.train_miss_prob}")
        if not 0 <= self.train_gap_prob <= 1:
            raise ValueError(f"train_gap_prob must be in [0, 1], got {self.train_gap_prob}")


class TrainingDiverged(UserError):
    """Too many consecutive non-finite steps."""


def split_options(values: dict, spec: models.ModelSpec) -> tuple[dict, dict]:
    """Split flat key=value options into (model options, train options), typed; unknown keys
    fail with the valid list."""
    train_fields = {f.name: models.Option(f.name, f.default, type(f.default))
                    for f in dataclasses.fields(TrainConfig)}
    model_opts, train_opts = {}, {}
    try:
        for key, value in values.items():
            if key in spec.options:
                model_opts[key] = models.coerce(spec.options[key], value)
            elif key in train_fields:
                train_opts[key] = models.coerce(train_fields[key], value)
            else:
                valid = sorted(spec.options) + sorted(train_fields)
                raise UserError(f"unknown option {key!r}; valid: {', '.join(valid)}")
    except ValueError as e:
        raise UserError(str(e)) from None
    return model_opts, train_opts


def model_spec(name: str) -> models.ModelSpec:
    try:
        return models.resolve(name)
    except ValueError as e:
        raise UserError(str(e)) from None


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent seeds for (run seed, epoch, stream) from numpy's SeedSequence."""
    import numpy as np

    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def learning_rate(cfg: TrainConfig, step: int, epoch: int) -> float:
    warmup = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    return cfg.lr * warmup * cfg.lr_decay ** (epoch // cfg.lr_decay_every)


def random_mask(B: int, T: int, p: float, t_init: int, generator: torch.Generator, device,
                gap_prob: float = 0.0):
    """A training mask (B, T), 1 = observed, the first t_init frames always: each later frame
    dropped with probability p, except that with probability gap_prob a sequence instead gets
    one gap, of a length uniform in 1 .. T - t_init at a start uniform where it fits (the
    planning protocol's long gaps, anywhere). gap_prob 0 draws exactly what it drew before."""
    mask = (torch.rand(B, T, generator=generator) >= p).float()
    if gap_prob > 0:
        gapped = torch.rand(B, generator=generator) < gap_prob
        length = torch.randint(1, T - t_init + 1, (B,), generator=generator)
        start = t_init + (torch.rand(B, generator=generator) * (T - t_init - length + 1)).long()
        t = torch.arange(T)
        inside = (t >= start[:, None]) & (t < (start + length)[:, None])
        mask = torch.where(gapped[:, None], (~inside).float(), mask)
    mask[:, :t_init] = 1.0
    return mask.to(device)


def evaluate_elbo(model, data: VideoSplit, batch_size: int, device, seed: int,
                  limit: int = 0) -> dict[str, float]:
    """Mean per-frame ELBO terms over (the first `limit` sequences of) a split."""
    noise = generator_kwargs(model, torch.Generator(device=device).manual_seed(seed))
    totals: dict[str, float] = {}
    count = 0
    model.eval()
    with torch.no_grad():
        for i, (x, u) in enumerate(data.batches(batch_size, device=device,
                                                with_controls=True)):
            if limit and i * batch_size >= limit:
                break
            mask = torch.ones(x.shape[:2], device=device)
            _, logs = model.loss(x, mask, **noise, **control_kwargs(model.loss, u))
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(x)
            count += len(x)
    model.train()
    return {k: v / count for k, v in totals.items()}


def train(run_dir: str | os.PathLike, model_name: str | None = None,
          data_path: str | os.PathLike | None = None, options: dict | None = None,
          seed: int | None = None, device: str = "auto", resume: bool = False,
          progress: bool = True, launched_by: str = "kvae-bench train") -> Path:
    """Train `model_name` (default models.DEFAULT) on `data_path` (default DEFAULT_DATA) into
    run_dir.

    With resume, continue run_dir: the saved model, data, seed and options, with `options`
    replacing saved training options (see the module doc). Everything the run needs (options,
    data, the model fitting the frames, a writable folder) is checked before the folder is made.
    """
    run_dir = Path(run_dir)
    changes = {}
    if resume:
        saved = rundir.read_config(run_dir)
        spec = model_spec(saved.get("model_target") or saved["model"])
        data_path, seed, merged, changes = _resume_options(saved, spec, model_name, data_path,
                                                           options or {}, seed)
        model_opts, train_opts = saved["model_config"], merged
    else:
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"{run_dir} is a file, not a folder: choose another --out")
        if run_dir.exists():
            _check_empty(run_dir)
        spec, data_path = model_spec(model_name or models.DEFAULT), Path(data_path
                                                                         or DEFAULT_DATA)
        seed = 0 if seed is None else seed
        model_opts, train_opts = split_options(options or {}, spec)
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")
    try:
        model_opts = models.resolve_options(spec, model_opts)
        tcfg = TrainConfig(**train_opts)
        tcfg.validate()
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    device = runinfo.choose_device(device)
    train_data = VideoSplit(data_path, "train", limit=tcfg.train_limit or None)
    test_data = VideoSplit(data_path, "test", limit=tcfg.eval_limit or None)
    _check_fits(spec, model_opts, tcfg, train_data)
    if resume:
        rundir.check_writable(run_dir)
    else:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            rundir.check_writable(run_dir)
        except OSError as e:
            raise UserError(f"cannot create {run_dir} ({e.strerror or e}): choose another "
                            "--out") from None
    with rundir.training_lock(run_dir):  # from here on this process owns the folder
        if not resume:
            _check_empty(run_dir)  # again: another process may have filled it since
            rundir.write_config(run_dir, {
                "model": spec.name, "model_target": spec.target, "model_source": spec.source,
                "model_config": model_opts, "train_config": dataclasses.asdict(tcfg),
                "data": str(Path(data_path).resolve()),
                "data_name": Path(data_path).name, "data_fingerprint": fingerprint(data_path),
                "seed": seed, "code_version": runinfo.git_commit(), "versions": runinfo.versions(),
                "device": device, "machine": runinfo.machine(), "launched_by": launched_by,
                "created_utc": runinfo.utc_now()})

        torch.manual_seed(seed)
        model = models.build(spec, train_data.image_size, model_opts).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
        start_epoch, step = 0, 0
        if resume and rundir.has_checkpoint(run_dir):
            ckpt = rundir.load_checkpoint(run_dir, device)
            try:
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
            except (RuntimeError, ValueError, KeyError):
                raise UserError(f"{run_dir}: the checkpoint does not fit the {spec.name} model of "
                                "this code version: start a new run with another --out") from None
            start_epoch, step = ckpt["epoch"], ckpt["step"]
        logged = rundir.read_log(run_dir)
        if resume:
            if logged and not rundir.has_checkpoint(run_dir):
                raise UserError(f"{run_dir} has {len(logged)} logged epochs but no checkpoint "
                                "(ckpt.pt; published runs keep none): resuming would start "
                                "over and discard them; train a new run with another --out")
            _check_resumable(run_dir, start_epoch, tcfg.epochs, changes)
        log_rows = [r for r in logged if r["epoch"] <= start_epoch]
        new_config = None  # written once an epoch has trained with it (or none is left)
        if resume:  # only now that the checkpoint and the log are known good
            data_now = str(Path(data_path).resolve())
            if data_now != saved["data"]:
                changes["data"] = (saved["data"], data_now)
            if changes:
                log.warning("resuming %s with saved options, changed: %s", run_dir, ", ".join(
                    f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
                saved.update(train_config=dataclasses.asdict(tcfg), data=data_now)
                saved.setdefault("changes", []).append({
                    "at_epoch": start_epoch, "utc": runinfo.utc_now(),
                    "changed": {k: new for k, (_, new) in changes.items()}})
                new_config = saved
            gave_up = rundir.divergence(run_dir)
            if gave_up and gave_up["epoch"] > tcfg.epochs:  # ends before the epoch that did
                rundir.clear_diverged(run_dir)
        rundir.write_log(run_dir, log_rows)
        if new_config is not None and start_epoch >= tcfg.epochs:
            rundir.write_config(run_dir, new_config)  # nothing to train: epochs or data only

        steps_per_epoch = max(1, len(train_data) // tcfg.batch_size)
        graphs = _GraphRunner(model, optimizer, train_data, tcfg, device) \
            if _wants_graph(tcfg, device) else None
        for epoch in range(start_epoch, tcfg.epochs):
            t0 = time.time()
            plan = epoch_schedule(model, epoch)  # what the model trains in this epoch
            shuffle = torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{tcfg.epochs}",
                       disable=None if progress else True, leave=False, file=sys.stderr)
            if graphs is not None and not graphs.prepare(plan):
                graphs = None  # this model cannot be captured: eager from here on
            if graphs is not None:
                torch.cuda.manual_seed(epoch_seed(seed, epoch, 1))
                train_logs, skipped, step, lr = graphs.epoch(epoch, step, shuffle, bar, run_dir)
            else:
                noise = generator_kwargs(model, torch.Generator(device=device).manual_seed(
                    epoch_seed(seed, epoch, 1)))
                train_logs, skipped, step, lr = _eager_epoch(
                    model, optimizer, train_data, tcfg, plan, epoch, step, shuffle, noise, bar,
                    device, run_dir)
            bar.close()
            train_logs = {f"train_{k}": v for k, v in train_logs.items()}
            test_logs = {f"test_{k}": v for k, v in evaluate_elbo(
                model, test_data, _eval_batch(tcfg, device), device, seed).items()}
            row = {"epoch": epoch + 1, "step": step, "lr": lr, "skipped_steps": skipped,
                   **train_logs, **test_logs, "seconds": round(time.time() - t0, 2),
                   "device": device, "step_mode": "cuda-graph" if graphs is not None else "eager"}
            runinfo.raise_if_stopped()  # a stop swallowed mid-epoch: write nothing more
            if new_config is not None:  # this epoch trained with the changed options
                rundir.write_config(run_dir, new_config)
                new_config = None
            log_rows.append(row)
            rundir.write_log(run_dir, log_rows)
            rundir.save_checkpoint(run_dir, {"model": model.state_dict(),
                                             "optimizer": graphstep.portable_state(optimizer),
                                             "epoch": epoch + 1, "step": step})
            rundir.clear_diverged(run_dir)  # past the epoch that diverged, if one did
            if progress:
                shown = [k for k in ("elbo", "log_px") if f"test_{k}" in test_logs] or \
                    [k[len("test_"):] for k in list(test_logs)[:2]]
                terms = ", ".join(f"test {k} {test_logs[f'test_{k}']:.2f}" for k in shown)
                tqdm.write(f"epoch {epoch + 1}: {terms} ({row['seconds']:.0f} s"
                           f"{f', {skipped} skipped' if skipped else ''})", file=sys.stderr)
        return run_dir


def _eager_epoch(model, optimizer, train_data, tcfg, plan, epoch, step, shuffle, noise, bar,
                 device, run_dir):
    """One epoch, step by step: (mean logs, skipped steps, step, last lr)."""
    totals, count, skipped, bad_in_a_row, lr = {}, 0, 0, 0, None
    for x, u in train_data.batches(tcfg.batch_size, shuffle, device, drop_last=True,
                                   with_controls=True):
        lr = learning_rate(tcfg, step, epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr
        mask = torch.ones(x.shape[:2], device=device) if not _gappy(tcfg) else \
            random_mask(*x.shape[:2], tcfg.train_miss_prob, tcfg.t_init, shuffle, device,
                        tcfg.train_gap_prob)
        loss, logs = model.loss(x, mask, **plan.loss_kwargs, **noise,
                                **control_kwargs(model.loss, u))
        optimizer.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(loss))
        if ok:
            loss.backward()
            for p in plan.frozen:
                p.grad = None
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            ok = bool(torch.isfinite(norm))
        bar.update(1)
        if not ok:
            skipped += 1
            bad_in_a_row += 1
            if bad_in_a_row > tcfg.max_bad_steps:
                _diverged(bad_in_a_row, epoch, run_dir)
            optimizer.zero_grad(set_to_none=True)
            continue
        bad_in_a_row = 0
        optimizer.step()
        step += 1
        for k, v in logs.items():
            totals[k] = totals.get(k, 0.0) + float(v)
        count += 1
        bar.set_postfix(loss=f"{loss.item():.2f}")
    return {k: v / max(count, 1) for k, v in totals.items()}, skipped, step, lr


def _diverged(bad_in_a_row: int, epoch: int, run_dir: Path):
    rundir.mark_diverged(run_dir, epoch + 1, bad_in_a_row)
    last = (f"{run_dir} (epoch {rundir.checkpoint_epoch(run_dir)})"
            if rundir.has_checkpoint(run_dir) else "none (no epoch finished)")
    steps = "step" if bad_in_a_row == 1 else "steps"
    raise TrainingDiverged(f"{bad_in_a_row} non-finite {steps} in a row at epoch {epoch + 1}; "
                           f"last good checkpoint: {last}; resume it with a lower learning "
                           "rate (`--resume --set lr=...`) or a smaller grad_clip")


def _wants_graph(tcfg: TrainConfig, device: str) -> bool:
    """The CUDA-graph step (kvae_bench.graphstep) runs on a GPU with full masks."""
    return tcfg.cuda_graph and str(device).startswith("cuda") and not _gappy(tcfg)


def _gappy(tcfg: TrainConfig) -> bool:
    """Whether training masks drop frames (then steps stay eager: see kvae_bench.graphstep)."""
    return tcfg.train_miss_prob > 0 or tcfg.train_gap_prob > 0


def _eval_batch(tcfg: TrainConfig, device: str) -> int:
    """Test-ELBO batch: on a GPU large (fewer launches), on the CPU twice the training one."""
    return 500 if str(device).startswith("cuda") else 2 * tcfg.batch_size


class _GraphRunner:
    """The epochs of a run on a GPU through kvae_bench.graphstep: the training frames live on
    the GPU, each phase of the epoch schedule is captured once."""

    def __init__(self, model, optimizer, train_data: VideoSplit, tcfg: TrainConfig, device):
        self.model, self.optimizer, self.tcfg, self.device = model, optimizer, tcfg, device
        self.frames = train_data.frames.to(device)  # uint8, (N, T, H, W)
        self.controls = train_data.controls.to(device) \
            if control_kwargs(model.loss, train_data.controls) else None
        self.step_fn, self.key = None, None
        graphstep.make_capturable(optimizer, device)

    def prepare(self, plan) -> bool:
        """Capture the step for this epoch's plan (if not done); False: cannot, train eagerly."""
        key = graphstep.capture_key(plan)
        if key == self.key:
            self.step_fn.set_numbers(plan.loss_kwargs)
            return True
        B = self.tcfg.batch_size
        x = (self.frames[:B] > 127).float()
        u = None if self.controls is None else self.controls[:B]
        try:
            self.step_fn = graphstep.GraphedStep(self.model, self.optimizer, plan, x,
                                                 self.tcfg.grad_clip, u)
        except graphstep.GraphUnsupported as e:
            log.warning("training eagerly: %s", e)
            return False
        self.key = key
        return True

    def epoch(self, epoch: int, step: int, shuffle: torch.Generator, bar, run_dir):
        B = self.tcfg.batch_size
        order = torch.randperm(len(self.frames), generator=shuffle).to(self.device)
        steps = max(1, len(self.frames) // B)
        lr = None
        for i in range(steps):
            lr = learning_rate(self.tcfg, step, epoch)
            idx = order[i * B:(i + 1) * B]
            self.step_fn.step(self.frames[idx] > 127, lr,
                              None if self.controls is None else self.controls[idx])
            step += 1
            bar.update(1)
        logs, good, longest = self.step_fn.take_epoch()
        if longest > self.tcfg.max_bad_steps:
            _diverged(longest, epoch, run_dir)
        return logs, steps - good, step, lr


def _resume_options(saved: dict, spec, model_name, data_path, options: dict, seed):
    """(data, seed, train options, changes) of a resumed run: the saved ones, with the given
    training options replacing saved ones. A different model, model option, seed or data is an
    error: the checkpoint belongs to those."""
    if model_name is not None and model_name not in (saved["model"],
                                                     saved.get("model_target")):
        raise UserError(f"cannot resume a {saved['model']} run as {model_name}: drop --model "
                        "or start a new run with another --out")
    if seed is not None and seed != saved["seed"]:
        raise UserError(f"cannot resume seed {saved['seed']} as seed {seed}: drop --seed or "
                        "start a new run with another --out")
    model_opts, train_opts = split_options(options, spec)
    other = {k: v for k, v in model_opts.items() if saved["model_config"].get(k) != v}
    if other:
        raise UserError(f"cannot resume with other model options ({', '.join(other)}): the "
                        "checkpoint holds the saved model; start a new run with another --out")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        merged = split_options({k: v for k, v in saved["train_config"].items() if k in known},
                               spec)[1]
    except UserError as e:
        raise UserError(f"the run's config.json, saved training options: {e}; "
                        "fix the file or start a new run") from None
    changes = {k: (merged.get(k), v) for k, v in train_opts.items() if merged.get(k) != v}
    merged.update(train_opts)
    return locate_data(saved, data_path), saved["seed"], merged, changes


def _check_empty(run_dir: Path) -> None:
    """A new run's folder holds nothing (but a lock file a dead process left)."""
    if any(p.name != rundir.LOCK for p in run_dir.iterdir()):
        raise UserError(f"{run_dir} exists and is not empty: pass --resume to continue a run "
                        "there, or choose another --out")


def _check_resumable(run_dir: Path, done: int, epochs: int, changes: dict) -> None:
    """A UserError, before anything is written, where resuming would record options that
    no epoch trains with: fewer epochs than the checkpoint has, or changed training options
    on a run with nothing left to train."""
    if epochs < done:
        raise UserError(f"{run_dir} has trained {done} epochs already: pass --epochs {done} or "
                        f"more to continue it, or start a new run with another --out")
    unused = [k for k in changes if k not in ("epochs", "data")]
    if epochs == done and unused:
        raise UserError(f"{run_dir} has trained all its {done} epochs, so {', '.join(unused)} "
                        f"would be recorded but never used: drop them, pass --epochs more than "
                        f"{done} to train on with them, or start a new run with another --out")


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def generator_kwargs(model, generator: torch.Generator) -> dict:
    """{"generator": generator} for a model whose loss takes one (protocol: optional), else
    {}: the noise of a run then flows from its seed."""
    return {"generator": generator} if _takes(model.loss, "generator") else {}


def control_kwargs(fn, controls) -> dict:
    """{"controls": controls} where the data has controls and the method (loss, impute,
    generate) takes them (protocol: optional); models without are given none."""
    return {"controls": controls} if controls is not None and _takes(fn, "controls") else {}


def _check_fits(spec, model_opts: dict, tcfg: TrainConfig, data: VideoSplit) -> None:
    """Before any folder is made: the data is long enough for the protocol, and the model
    builds, has parameters, and keeps the protocol on two sequences: loss a finite scalar with
    float logs, impute a dict of (B, T, H, W), generate (B, steps, H, W)."""
    T = data.frames.shape[1]
    need = max(masks.T_INIT, tcfg.t_init) + 1
    if T > masks.T_INIT and tcfg.t_init >= T:
        raise UserError(f"t_init {tcfg.t_init} leaves no frame to predict in sequences of {T} "
                        f"frames: set t_init below {T} (default {masks.T_INIT})")
    if T < need:
        raise UserError(f"{T} frames per sequence are too few: the benchmark observes "
                        f"{need - 1} and predicts the rest; generate data with --steps 20")
    x = (data.frames[:2] > 127).float()  # (B, T, H, W), B = 2 to catch broadcasting
    u = None if data.controls is None else data.controls[:2]
    mask = torch.ones(x.shape[:2])
    size = f"{data.image_size}x{data.image_size}"
    try:
        model = models.build(spec, data.image_size, model_opts)
    except Exception as e:
        raise UserError(f"{spec.name} cannot be built for frames of {size} with options "
                        f"{model_opts} ({_first_line(e)})") from None
    if not list(model.parameters()):
        raise UserError(f"{spec.name} has no parameters to train: the training loop fits every "
                        "model with Adam; give it at least one nn.Parameter")
    problems = []
    try:
        with torch.no_grad():
            loss, logs = model.loss(x, mask, **control_kwargs(model.loss, u))
            if not (torch.is_tensor(loss) and loss.numel() == 1):
                problems.append("loss must return a scalar tensor")
            bad_logs = [k for k, v in logs.items() if not _is_float(v)]
            if bad_logs:
                problems.append(f"loss logs must be floats, not {', '.join(bad_logs)}")
            out = model.impute(x, mask, **control_kwargs(model.impute, u))
            if not isinstance(out, dict) or not out:
                problems.append("impute must return {method: (B, T, H, W)}")
            else:
                problems += [f"impute[{k!r}] has shape {tuple(v.shape)}, not {tuple(x.shape)}"
                             for k, v in out.items() if tuple(v.shape) != tuple(x.shape)]
            gen = model.generate(x, masks.T_INIT, T - masks.T_INIT,
                                 **control_kwargs(model.generate, u))
            want = (2, T - masks.T_INIT, *x.shape[2:])
            if not torch.is_tensor(gen) or tuple(gen.shape) != want:
                problems.append(f"generate must return {want}, got "
                                f"{tuple(gen.shape) if torch.is_tensor(gen) else type(gen)}")
    except Exception as e:
        problems.append(_first_line(e))
    if problems and data.controls is None and any("controls" in p for p in problems):
        raise UserError(f"{spec.name} with these options needs the data's controls, "
                        "and this data set has none: train it on data with controls (e.g. "
                        "`kvae-bench generate --env pendulum --preset dvbf`) or drop the "
                        "control options")
    if problems:
        hint = " (the built-in conv models need a frame size that is a multiple of 8)" \
            if data.image_size % 8 else ""
        raise UserError(f"{spec.name} does not keep the model protocol on frames of {size}: "
                        f"{'; '.join(problems)}{hint}")


def _is_float(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError, RuntimeError):
        return False
    return True


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:120]}" if text else type(e).__name__
