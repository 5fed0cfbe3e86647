"""Benchmark your own model: the protocol, models from outside (module:Class and entry
points), and the canonical data in your own loop."""

import ast
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import simulators
from kvae_bench import models
from kvae_bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY_DATA = ["--train", "32", "--test", "8", "--steps", "8", "--size", "16", "--param",
             "radius=2", "--workers", "1"]

MINIMAL = '''
import torch
from torch import nn


class Minimal(nn.Module):
    """Only the three core methods and one parameter: every frame is the same learned
    grey level."""

    def __init__(self, image_size, level: float = 0.1):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(float(level)).logit())

    def loss(self, x, mask):
        p = torch.sigmoid(self.logit).expand_as(x)
        nll = nn.functional.binary_cross_entropy(p, x, reduction="none").sum((-2, -1))
        nll = (nll * mask).sum() / mask.sum()
        return nll, {"nll": nll.item()}

    def impute(self, x, mask):
        p = torch.sigmoid(self.logit).expand_as(x)
        return {"flat": torch.where(mask[:, :, None, None] > 0.5, x, p)}

    def generate(self, x, n_observed, steps):
        return torch.sigmoid(self.logit).expand(x.shape[0], steps, *x.shape[2:])


class Impostor(Minimal):
    name = "kvae"  # a built-in's name: its rows would mix with the KVAE's


class NoParams(nn.Module):
    def __init__(self, image_size):
        super().__init__()

    def loss(self, x, mask):
        return x.mean(), {}

    def impute(self, x, mask):
        return {"x": x}

    def generate(self, x, n_observed, steps):
        return x[:, :steps]


class WrongShape(Minimal):
    def generate(self, x, n_observed, steps):
        return super().generate(x, n_observed, steps)[:1]


class NoGenerate(nn.Module):
    def loss(self, x, mask):
        return x.sum(), {}

    def impute(self, x, mask):
        return {"x": x}
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    (tmp_path / "tinymodel.py").write_text(MINIMAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["generate", "--out", "box.h5", *TINY_DATA])
    assert r.exit_code == 0, r.output
    return tmp_path


def test_a_minimal_model_from_outside_is_trained_evaluated_and_reported(plugin_path):
    run = plugin_path / "runs" / "minimal"
    r = CliRunner().invoke(main, ["train", "--model", "tinymodel:Minimal", "--data", "box.h5",
                                  "--out", str(run), "--epochs", "2", "--set", "batch_size=8",
                                  "--set", "level=0.2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "Minimal" and config["model_target"] == "tinymodel:Minimal"
    assert config["model_config"] == {"level": 0.2}  # typed from the signature's default
    assert config["model_source"]["module"] == "tinymodel"
    m = json.loads((run / "metrics.json").read_text())
    assert {r["method"] for r in m["imputation"]} == {"flat"}
    assert "test_nll" not in m["elbo"] and "nll" in m["elbo"]
    assert any("probe_r2" in s for s in m["skipped"]) and m.get("probe_r2") is None
    out = plugin_path / "report"
    r = CliRunner().invoke(main, ["report", "--runs", "runs", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert any(r["model"] == "Minimal" and r["method"] == "flat" for r in rows)
    # options are checked against the signature, and listed
    r = CliRunner().invoke(main, ["train", "--model", "tinymodel:Minimal", "--data", "box.h5",
                                  "--out", "runs/x", "--set", "nope=1"])
    assert r.exit_code == 1 and "unknown option 'nope'; valid: level" in r.output
    r = CliRunner().invoke(main, ["options", "--model", "tinymodel:Minimal"])
    assert r.exit_code == 0 and "level = 0.1" in r.output


def test_a_model_missing_a_method_fails_in_one_line_naming_it(plugin_path):
    r = CliRunner().invoke(main, ["train", "--model", "tinymodel:NoGenerate", "--data",
                                  "box.h5", "--out", "runs/bad"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "lacks generate" in r.output
    assert not (plugin_path / "runs" / "bad").exists()


def test_example_package_through_its_entry_point(tmp_path):
    """Install examples/constant_velocity (no dependencies, no network) into a folder, then run
    train -> evaluate -> report in a fresh interpreter that finds it by its entry point name;
    its rows land in table.csv beside the KVAE's."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site),
                    str(ROOT / "examples" / "constant_velocity")], check=True,
                   capture_output=True, timeout=300)
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "kvae_bench.cli", "--quiet", *args],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "model constant_velocity (kvb_cv.model:ConstantVelocity)" in cli("options")
    cli("generate", "--out", "box.h5", *TINY_DATA)
    common = ["--data", "box.h5", "--epochs", "1", "--set", "batch_size=8", "--device", "cpu"]
    cli("train", "--model", "constant_velocity", "--out", "runs/cv", *common)
    cli("train", "--model", "kvae", "--out", "runs/kvae", *common, "--set", "eval_limit=8",
        "--set", "frozen_dynamics_epochs=0")
    cli("report", "--runs", "runs", "--out", "report")
    rows = list(csv.DictReader(open(tmp_path / "report" / "table.csv")))
    planning = {(r["model"], r["method"]) for r in rows if r["protocol"] == "planning"}
    assert {("constant_velocity", "extrapolated"), ("kvae", "smoothed")} <= planning
    source = json.loads((tmp_path / "runs" / "cv" / "config.json").read_text())["model_source"]
    assert source["distribution"] == "kvb-constant-velocity" and source["version"] == "0.1.0"


def test_cli_holds_no_model_or_env_name():
    names = set(models.BUILTIN) | set(simulators.ENVS)
    tree = ast.parse((ROOT / "kvae_bench" / "cli.py").read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    assert not names & strings


def test_builtin_models_follow_the_protocol_and_say_their_schedule():
    for name in models.BUILTIN:
        spec = models.resolve(name)
        model = models.build(spec, 16)
        assert isinstance(model, models.protocol.BenchmarkModel)
        assert callable(model.codes) and callable(model.reconstruct)
    kvae = models.build("kvae", 16, {"only_vae_epochs": 1, "frozen_dynamics_epochs": 2})
    first, second, third = (kvae.epoch_schedule(e) for e in (0, 1, 3))
    dynamics = set(map(id, kvae.alpha_net.parameters()))
    assert first.loss_kwargs == {"vae_only": True} and id(kvae.A) in set(map(id, first.frozen))
    assert set(map(id, second.frozen)) == dynamics and third.frozen == []


def test_canonical_data_in_your_own_loop(tmp_path):
    from kvae_bench.datasets import Videos

    with pytest.raises(Exception, match="not found: pass generate=True"):
        Videos("box", root=tmp_path)
    train = Videos("box", split="train", root=tmp_path, generate=True)  # makes and checks it
    assert len(train) == 5000 and (tmp_path / "box.h5").exists()
    frames, states = train[0]
    assert frames.shape == (20, 32, 32) and frames.dtype == torch.float32
    assert set(frames.unique().tolist()) <= {0.0, 1.0} and states.shape == (20, 4)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch[0].shape == (4, 20, 32, 32)
    with pytest.raises(Exception, match="unknown data set 'lava'"):
        Videos("lava", root=tmp_path)


def test_an_option_a_model_ignores_is_rejected():
    """AE-RNN has no encoder variance and no KL weight: setting them is an error, not a
    silent no-op."""
    with pytest.raises(ValueError, match="unknown ae_rnn option.*scale_reconstruction"):
        models.build("ae_rnn", 16, {"scale_reconstruction": 0.5})
    assert models.build("vae_rnn", 16, {"scale_reconstruction": 0.5}).config.\
        scale_reconstruction == 0.5


@pytest.mark.parametrize("model,message", [
    ("tinymodel:Impostor", "is the registered model"),
    ("tinymodel:NoParams", "has no parameters to train"),
    ("tinymodel:WrongShape", "generate must return (2, 4, 16, 16)"),
    ("tinymodel:Nothing", "has no class 'Nothing'"),
    ("tinymodel:NoGenerate", "lacks generate"),
])
def test_careless_models_fail_before_any_work_in_one_line(plugin_path, model, message):
    r = CliRunner().invoke(main, ["train", "--model", model, "--data", "box.h5", "--out",
                                  "runs/careless"])
    assert r.exit_code == 1 and message in r.output and r.output.count("\n") == 1, r.output
    assert not (plugin_path / "runs" / "careless").exists()
