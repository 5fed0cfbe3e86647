"""The CUDA-graph training step (kvae_bench.graphstep), checked on the CPU: the captured body
trains exactly as the eager loop does, its warm-up leaves no trace, non-finite steps are
zeroed and counted, and no built-in model's loss reads a tensor back to the host (which a
CUDA graph capture forbids). The capture itself needs a GPU: benchmarks/gpu_train.py."""

import pytest
import torch

from kvae_bench import graphstep, masks, models
from kvae_bench.models.protocol import EpochSchedule, epoch_schedule

B, T, H = 4, 6, 16


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, H, H, generator=g) > 0.8).float()


def model_and_adam(name="kvae", seed=0, **options):
    torch.manual_seed(seed)
    m = models.build(name, H, {"conv_precision": "float32", **options})
    return m, torch.optim.Adam(m.parameters(), lr=1e-3)


def eager_steps(model, opt, xs, plan, seed, clip=150.0):
    torch.manual_seed(seed)
    for x in xs:
        loss, _ = model.loss(x, torch.ones(B, T), **plan.loss_kwargs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in plan.frozen:
            p.grad = None
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()


def graphed_steps(model, opt, xs, plan, seed, clip=150.0):
    graphstep.make_capturable(opt, "cpu")
    step = graphstep.GraphedStep(model, opt, plan, xs[0], clip)
    torch.manual_seed(seed)  # the warm-up drew noise: reseed, as the loop does per epoch
    for x in xs:
        step.step(x, 1e-3)
    return step


def assert_same_parameters(m1, m2, atol=1e-6):
    for (name, p), q in zip(m1.named_parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, atol=atol, rtol=1e-5, msg=name)


@pytest.mark.parametrize("name", ["kvae", "ae_rnn", "vae_rnn", "dmm", "dvbf"])
def test_graph_body_trains_as_the_eager_loop(name):
    xs = [batch(i) for i in range(4)]
    m1, o1 = model_and_adam(name)
    m2, o2 = model_and_adam(name)
    plan = epoch_schedule(m1, 0)
    eager_steps(m1, o1, xs, plan, seed=7)
    step = graphed_steps(m2, o2, xs, epoch_schedule(m2, 0), seed=7)
    assert_same_parameters(m1, m2)
    logs, good, longest = step.take_epoch()
    assert good == 4 and longest == 0 and set(logs) >= {"log_px"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())


def test_frozen_parameters_stay_put_and_a_later_phase_continues_adam():
    """KVAE's first epochs freeze the dynamics network; a new capture for the next phase
    starts from the optimizer state the first phase left (the warm-up restores it)."""
    xs = [batch(i) for i in range(3)]
    m1, o1 = model_and_adam()
    m2, o2 = model_and_adam()
    frozen_before = [p.detach().clone() for p in m2.alpha_net.parameters()]
    eager_steps(m1, o1, xs, epoch_schedule(m1, 0), seed=1)
    graphed_steps(m2, o2, xs, epoch_schedule(m2, 0), seed=1)
    for p, q in zip(m2.alpha_net.parameters(), frozen_before):
        assert torch.equal(p, q)
    assert_same_parameters(m1, m2)
    state_before = {k: v.clone() for k, v in o2.state[m2.A].items()}
    step = graphstep.GraphedStep(m2, o2, EpochSchedule(), xs[0], 150.0)  # all trainable
    for k, v in o2.state[m2.A].items():  # the new phase's warm-up left no trace
        assert torch.equal(v, state_before[k]), k
    eager_steps(m1, o1, xs, EpochSchedule(), seed=2)
    torch.manual_seed(2)
    for x in xs:
        step.step(x, 1e-3)
    assert_same_parameters(m1, m2)


def test_a_new_annealing_weight_needs_no_new_capture():
    """DVBF anneals its KL weight epoch by epoch: the number is fed to the captured step
    through a device tensor, so one capture serves every epoch."""
    xs = [batch(i) for i in range(3)]
    m1, o1 = model_and_adam("dvbf")
    m2, o2 = model_and_adam("dvbf")
    first, later = epoch_schedule(m2, 0), epoch_schedule(m2, 5)
    assert graphstep.capture_key(first) == graphstep.capture_key(later)
    assert first.loss_kwargs != later.loss_kwargs
    graphstep.make_capturable(o2, "cpu")
    step = graphstep.GraphedStep(m2, o2, first, xs[0], 150.0)
    step.set_numbers(later.loss_kwargs)
    torch.manual_seed(4)
    for x in xs:
        step.step(x, 1e-3)
    eager_steps(m1, o1, xs, later, seed=4)
    assert_same_parameters(m1, m2)


def test_warm_up_leaves_parameters_and_fresh_adam_untouched():
    m, opt = model_and_adam()
    before = [p.detach().clone() for p in m.parameters()]
    graphstep.make_capturable(opt, "cpu")
    graphstep.GraphedStep(m, opt, EpochSchedule(), batch(0), 150.0)
    for p, q in zip(m.parameters(), before):
        assert torch.equal(p, q)
    for state in opt.state.values():
        assert all(not torch.is_tensor(v) or not v.any() for v in state.values())


def test_non_finite_step_gets_zero_gradient_and_is_counted():
    m, opt = model_and_adam()
    graphstep.make_capturable(opt, "cpu")
    step = graphstep.GraphedStep(m, opt, EpochSchedule(), batch(0), 150.0)
    before = [p.detach().clone() for p in m.parameters()]
    bad = batch(1)
    bad[0, 0, 0, 0] = float("nan")
    step.step(bad, 1e-3)
    step.step(bad, 1e-3)
    for p, q in zip(m.parameters(), before):  # fresh Adam, zero gradient: no move
        assert torch.equal(p, q)
    step.step(batch(2), 1e-3)
    logs, good, longest = step.take_epoch()
    assert (good, longest) == (1, 2)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert step.take_epoch()[1:] == (0, 0)  # counters reset


def test_optimizer_state_from_a_graph_run_loads_into_an_eager_adam():
    m, opt = model_and_adam()
    graphstep.make_capturable(opt, "cpu")
    step = graphstep.GraphedStep(m, opt, EpochSchedule(), batch(0), 150.0)
    step.step(batch(1), 3e-4)
    state = graphstep.portable_state(opt)
    assert all(isinstance(g["lr"], float) and not g["capturable"]
               for g in state["param_groups"])
    m2, opt2 = model_and_adam()
    opt2.load_state_dict(state)
    loss, _ = m2.loss(batch(2), torch.ones(B, T))
    loss.backward()
    opt2.step()


class _NoHostReads:
    """Every Python-level way of reading a tensor back to the host raises."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "cpu")

    def __enter__(self):
        self.saved = {n: getattr(torch.Tensor, n) for n in self.NAMES}

        def forbid(name):
            def raiser(*a, **k):
                raise AssertionError(f"Tensor.{name} inside the loss: a CUDA graph cannot "
                                     "capture a host read")
            return raiser
        for n in self.NAMES:
            setattr(torch.Tensor, n, forbid(n))

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(torch.Tensor, n, f)


@pytest.mark.parametrize("name, kwargs", [("kvae", {}), ("kvae", {"vae_only": True}),
                                          ("kvae", {"elbo": "sampled"}), ("ae_rnn", {}),
                                          ("vae_rnn", {}), ("dmm", {}),
                                          ("dvbf", {"annealing": 0.3})])
def test_builtin_losses_never_read_tensors_back(name, kwargs):
    options = {"elbo": kwargs.pop("elbo")} if "elbo" in kwargs else {}
    m, _ = model_and_adam(name, **options)
    x, mask = batch(3), torch.ones(B, T)
    with masks.full_masks_promised(), _NoHostReads():
        loss, logs = m.loss(x, mask, **kwargs)
        loss.backward()
    assert all(torch.is_tensor(v) and v.numel() == 1 and not v.requires_grad
               for v in logs.values())
    assert not masks._FULL_PROMISED.get()  # the promise ends with its block
