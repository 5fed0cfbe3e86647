"""The training step on a GPU as one CUDA graph: loss, backward, gradient clipping and Adam,
captured once per phase of the epoch schedule and replayed for every batch.

Why: at the paper's shapes a KVAE step is thousands of tiny kernels (the 20-step Kalman
recursion, the LSTM, Adam over every tensor), so an eager step on an H100 is bound by the
CPU launching them, not by the GPU. A replayed graph launches them all at once.

What a graph cannot do, and what replaces it:
  - read anything back to the host: the non-finite check happens on the GPU; a step whose loss
    or gradient norm is not finite gets a zero gradient (Adam's moments still decay one step,
    unlike the eager loop, which skips Adam); the count of such steps and the longest run of
    them are read once per epoch, and a run longer than max_bad_steps stops training there;
  - branch on data: masks are all ones (train_miss_prob = train_gap_prob = 0; the models are
    told so through kvae_bench.masks.full_masks_promised), so a run that drops frames stays
    eager;
  - change shapes: every batch is full (drop_last), the data set lives on the GPU;
  - use a private random generator: the noise comes from the default CUDA generator, reseeded
    from (seed, epoch) at every epoch start, so a run is repeatable and resumable, but draws
    other noise than the eager loop.
The capture runs three warm-up steps first (CUDA libraries allocate their workspaces); the
parameters and Adam's state are put back afterwards, so the warm-up leaves no trace.

A model whose loss synchronises with the host (e.g. `.item()` in its logs) is found out
during the warm-up (torch's sync debug mode raises) and trains eagerly; `reason` says why.
"""

from __future__ import annotations

import contextlib

import torch

from kvae_bench import masks

WARMUP_STEPS = 3


class GraphUnsupported(Exception):
    """This model or run cannot be captured; train eagerly."""


class GraphedStep:
    """One phase's captured step. Call `step(x, lr)` per batch and `take_epoch()` at the end
    of each epoch. Raises GraphUnsupported (parameters and optimizer untouched) when the
    model's step cannot be captured."""

    def __init__(self, model, optimizer, plan, x, grad_clip: float, controls=None):
        self.model, self.optimizer = model, optimizer
        self.grad_clip = grad_clip
        self.device = x.device
        self.x = x.clone()
        self.controls = None if controls is None else controls.clone()  # (B, T, U) or None
        self.mask = torch.ones(x.shape[:2], device=self.device)
        self.lr = optimizer.param_groups[0]["lr"]  # the tensor every group shares
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.frozen = {id(p) for p in plan.frozen}
        # numbers among the loss's keyword arguments (e.g. an annealing weight) live in device
        # tensors, so that a new value needs no new capture (see set_numbers)
        self.kwargs = {k: torch.tensor(float(v), device=self.device) if _is_number(v) else v
                       for k, v in plan.loss_kwargs.items()}
        self.keys: list[str] = []  # the loss's log names, set by the first warm-up step
        self._capture()

    # ---- the captured body ---------------------------------------------------------------

    def _body(self):
        with masks.full_masks_promised():
            extra = {} if self.controls is None else {"controls": self.controls}
            loss, logs = self.model.loss(self.x, self.mask, **self.kwargs, **extra)
        loss.backward()
        for p in self.params:
            if id(p) in self.frozen:
                p.grad = None
        grads = [p for p in self.params if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(grads, self.grad_clip)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
        for p in grads:
            p.grad.masked_fill_(~finite, 0.0)
        self.optimizer.step()
        if self.totals is None:
            self.keys = list(logs)
            self.totals = torch.zeros(len(self.keys), device=self.device)
        values = torch.stack([torch.as_tensor(logs[k], device=self.device).float().reshape(())
                              for k in self.keys])
        ok = finite.float()
        self.totals.add_(torch.where(finite, values, 0.0))
        self.good.add_(ok)
        self.streak.mul_(1.0 - ok).add_(1.0 - ok)
        torch.maximum(self.longest, self.streak, out=self.longest)

    def _reset_counters(self):
        for t in (self.totals, self.good, self.streak, self.longest):
            if t is not None:
                t.zero_()

    def _capture(self):
        dev = self.device
        cuda = dev.type == "cuda"
        self.good, self.streak, self.longest = (torch.zeros((), device=dev) for _ in range(3))
        self.totals = None  # one per log key, made by the first warm-up step
        self.graph = None
        params = list(self.model.parameters())
        saved = [p.detach().clone() for p in params]
        state = {p: {k: v.clone() for k, v in self.optimizer.state[p].items()
                     if torch.is_tensor(v)} for p in params if p in self.optimizer.state}
        side = torch.cuda.Stream(dev) if cuda else None
        if cuda:
            side.wait_stream(torch.cuda.current_stream(dev))
        try:
            with torch.cuda.stream(side) if cuda else contextlib.nullcontext():
                for i in range(WARMUP_STEPS):
                    self.optimizer.zero_grad(set_to_none=True)
                    # the last warm-up step: libraries have set up, no sync may remain
                    with _no_sync(cuda and i == WARMUP_STEPS - 1):
                        self._body()
        except RuntimeError as e:
            self._restore(params, saved, state, side)
            raise GraphUnsupported(f"the step synchronises with the host ({_first(e)})") \
                from None
        if cuda:
            torch.cuda.current_stream(dev).wait_stream(side)
            self.optimizer.zero_grad(set_to_none=True)
            self.graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(self.graph):
                    self._body()
            except RuntimeError as e:
                self._restore(params, saved, state, None)
                raise GraphUnsupported(f"capture failed ({_first(e)})") from None
        self._restore(params, saved, state, None)

    def _restore(self, params, saved, state, side):
        """Parameters and Adam's state as before the warm-up (state made by the warm-up:
        zero, which is how Adam starts)."""
        if side is not None:
            torch.cuda.current_stream(self.device).wait_stream(side)
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)
            for p in params:
                for k, v in self.optimizer.state.get(p, {}).items():
                    if torch.is_tensor(v):
                        v.copy_(state[p][k]) if p in state and k in state[p] else v.zero_()
        self._reset_counters()

    # ---- use -------------------------------------------------------------------------------

    def step(self, x, lr: float, controls=None) -> None:
        self.x.copy_(x)
        if self.controls is not None:
            self.controls.copy_(controls)
        self.lr.fill_(lr)
        if self.graph is not None:
            self.graph.replay()
        else:  # on a CPU (tests): the same body, run eagerly
            self.optimizer.zero_grad(set_to_none=True)
            self._body()

    def set_numbers(self, loss_kwargs: dict) -> None:
        """New values for the numeric keyword arguments of the loss (same names)."""
        for k, v in loss_kwargs.items():
            if _is_number(v):
                self.kwargs[k].fill_(float(v))

    def take_epoch(self) -> tuple[dict[str, float], int, int]:
        """(mean logs over the finite steps, finite steps, longest run of non-finite steps)
        since the last call; resets the counters (one host sync)."""
        totals = self.totals.tolist()
        good, longest = int(self.good.item()), int(self.longest.item())
        self._reset_counters()
        return {k: v / max(good, 1) for k, v in zip(self.keys, totals)}, good, longest


@contextlib.contextmanager
def _no_sync(on: bool):
    """Inside (when on): an operation that synchronises with the host raises."""
    if not on:
        yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def make_capturable(optimizer, device) -> None:
    """Adam as a graph needs: capturable (on a GPU), its learning rate one tensor shared by
    every group, its step counts on the device."""
    device = torch.device(device)
    lr = torch.tensor(float(optimizer.param_groups[0]["lr"]), device=device)
    for group in optimizer.param_groups:
        group["capturable"] = device.type == "cuda"
        group["lr"] = lr
    for state in optimizer.state.values():
        if "step" in state and device.type == "cuda":
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


def portable_state(optimizer) -> dict:
    """The optimizer's state_dict as an eager Adam on any device loads it: lr a float,
    capturable off, step counts on the CPU."""
    sd = optimizer.state_dict()
    groups = [{**g, "lr": float(g["lr"]), "capturable": False} for g in sd["param_groups"]]
    states = {k: {n: (v.detach().to("cpu", torch.float32) if n == "step" else v)
                  for n, v in s.items()} for k, s in sd["state"].items()}
    return {"state": states, "param_groups": groups}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def capture_key(plan) -> tuple:
    """What a capture depends on: the frozen parameters and the loss's non-numeric keyword
    arguments (numbers change without a new capture)."""
    return (tuple(sorted(id(p) for p in plan.frozen)),
            tuple(sorted((k, "number" if _is_number(v) else repr(v))
                         for k, v in plan.loss_kwargs.items())))


def _first(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__
