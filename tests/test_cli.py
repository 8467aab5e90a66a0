"""The command line end to end, through ``genlab.cli.main`` and as a real subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genlab.cli import main
from genlab.config import field_names
from genlab.models import FAMILIES
from genlab.models.gan import GANConfig
from genlab.train import TrainConfig


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_datasets_and_families(capsys):
    code, out, _ = run_cli("datasets", capsys=capsys)
    assert code == 0 and "ring" in out and "digits" in out
    code, out, _ = run_cli("families", capsys=capsys)
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    # generation, density, representation (two words), conditional kind, context
    assert rows["pca"][-2:] == ["exact", "no"] and rows["vae"][2] == "lower"
    assert rows["flow"][-2] == rows["gan"][-2] == "mcmc" and rows["ae"][-2] == "-"


def test_readme_family_table_is_the_one_the_code_prints(capsys):
    code, out, _ = run_cli("families", "--markdown", capsys=capsys)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert code == 0 and out.count("\n") == len(FAMILIES) + 2  # header, rule, one per family
    assert out in readme, "README's family table differs: paste `genlab families --markdown`"


def test_train_evaluate_sample_resume(tmp_path, capsys):
    run = str(tmp_path / "run")
    code, out, err = run_cli(
        "train",
        "ae",
        "--data",
        "digits",
        "--out",
        run,
        "--epochs",
        "3",
        "--set",
        "latent_dim=4",
        "--no-progress",
        capsys=capsys,
    )
    assert code == 0, err
    code, out, _ = run_cli("evaluate", run, "--json", capsys=capsys)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["family"] == "ae" and result["log_prob_kind"] == "none"
    assert result["recon_mse"] > 0 and "nll_nats" not in result
    assert result["capabilities"]["encode"] is True

    code, out, _ = run_cli(
        "sample", run, "-n", "10", "--out", str(tmp_path / "s.npy"), capsys=capsys
    )
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (10, 1, 8, 8)
    code, _, _ = run_cli(
        "sample", run, "-n", "16", "--out", str(tmp_path / "s.png"), capsys=capsys
    )
    assert code == 0 and (tmp_path / "s.png").stat().st_size > 0

    code, out, _ = run_cli("resume", run, "--no-progress", capsys=capsys)
    assert code == 0  # a finished run resumes to the same finished state


def test_pca_evaluate_reports_exact_likelihood_and_bits_per_dim(tmp_path, capsys):
    run = str(tmp_path / "pca")
    assert run_cli("train", "pca", "--out", run, "--set", "latent_dim=8", capsys=capsys)[0] == 0
    code, out, _ = run_cli("evaluate", run, "--json", capsys=capsys)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["log_prob_kind"] == "exact" and result["levels"] == 17
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (64 * np.log(2)))
    assert 2.5 < result["bits_per_dim"] < 4.5


def test_evaluate_on_other_data_of_the_wrong_shape(tmp_path, capsys):
    run = str(tmp_path / "pca")
    run_cli("train", "pca", "--out", run, capsys=capsys)
    code, _, err = run_cli("evaluate", run, "--data", "ring", capsys=capsys)
    assert code == 2 and "shape (2,)" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "vae2", "--out", "X"], "unknown model family 'vae2'"),
        (["train", "ae", "--out", "X", "--set", "nope=1"], "unknown option 'nope'"),
        (["train", "ae", "--out", "X", "--set", "latent_dim"], "expects key=value"),
        (["train", "ae", "--out", "X", "--data", "nowhere.npy"], "unknown dataset"),
        (["train", "ae", "--out", "X", "--device", "tpu"], "unknown device"),
        (["train", "ae", "--out", "X", "--epochs", "2", "--set", "epochs=3"], "given twice"),
        (["train", "ae", "--out", "X", "--compile", "--set", "compile=false"], "given twice"),
        (["train", "ae", "--epochs", "2"], "needs --out DIR (or --dry-run)"),
        (["evaluate", "does-not-exist"], "no such run directory"),
        (["sample", "does-not-exist", "--out", "a.npy"], "no such run directory"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*args, capsys=capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("genlab: error:")


def dry_run_rows(out: str) -> dict[str, tuple[str, str]]:
    """``setting -> (value, source)`` from the table ``train --dry-run`` prints."""
    cells = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    return {row[0]: (row[1], row[2]) for row in cells if len(row) == 3}


def test_precision_and_compile_flags_are_training_settings(capsys):
    code, out, err = run_cli(
        "train", "vae", "--dry-run", "--precision", "bf16", "--compile", capsys=capsys
    )
    assert code == 0, err
    rows = dry_run_rows(out)
    assert rows["precision"] == ("bf16", "user") and rows["compile"] == ("True", "user")


def test_train_dry_run_shows_every_setting_and_its_source(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "gan", "--dry-run", "--out", str(run), "--set", "loss=wasserstein"]
    code, out, err = run_cli(*args, capsys=capsys)
    assert code == 0, err
    rows = dry_run_rows(out)
    assert set(rows) == set(field_names(GANConfig)) | set(field_names(TrainConfig))
    assert rows["lr"] == ("5e-05", "recipe (loss=wasserstein)")
    assert rows["optimizer"] == ("rmsprop", "recipe (loss=wasserstein)")
    assert rows["d_steps"] == ("5", "recipe (loss=wasserstein)")
    assert rows["steps"] == ("20000", "family (gan)")
    assert rows["epochs"] == ("None", "family (gan), which sets steps")
    assert rows["loss"] == ("wasserstein", "user")
    assert rows["hidden"] == ("(128, 128, 128, 128)", "defaults")
    assert "defaults < family (gan) < recipe (loss=wasserstein) < budget < images < user" in out
    assert not run.exists()  # nothing trained, no run directory

    args = ["train", "gan", "--dry-run", "--budget", "smoke", "--steps", "5", "--set", "lr=1e-4"]
    code, out, err = run_cli(*args, "--set", "loss=wasserstein", capsys=capsys)
    assert code == 0, err
    rows = dry_run_rows(out)
    assert rows["lr"] == ("0.0001", "user")  # the user's lr over the recipe's
    assert rows["steps"] == ("5", "user")
    assert rows["batch_size"] == ("64", "budget (smoke)")
    assert rows["hidden"] == ("(64, 64)", "budget (smoke)")
    assert rows["clip"] == ("0.01", "recipe (loss=wasserstein)")


def test_train_dry_run_sizes_the_settings_to_the_images(tmp_path, capsys):
    data = tmp_path / "tiny28.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    args = ["train", "vae", "--dry-run", "--data", str(data), "--budget", "fast"]
    code, out, err = run_cli(*args, capsys=capsys)
    assert code == 0, err
    rows = dry_run_rows(out)
    assert rows["architecture"] == ("conv", "images (28x28, fast)")
    assert rows["epochs"] == ("25", "images (28x28, fast)")
    assert "decided by the data" in out and "likelihood=discretized_logistic" in out
    code, out, err = run_cli("train", "vae", "--dry-run", "--budget", "fast", capsys=capsys)
    assert dry_run_rows(out)["architecture"] == ("mlp", "defaults")  # 8x8 digits
    code, out, err = run_cli(*args[:1], "flow", *args[2:], capsys=capsys)
    assert dry_run_rows(out)["levels"] == ("auto", "images (28x28, fast)")
    assert "(1, 28, 28)): levels=3, logit=True, actnorm=True" in out  # what auto became


@pytest.mark.parametrize("bad", ["lr=-1", "nope=1", "loss=bogus", "steps=1.5"])
def test_train_dry_run_rejects_bad_settings_as_training_does(tmp_path, capsys, bad):
    run = tmp_path / "run"
    trained = run_cli("train", "gan", "--out", str(run), "--set", bad, capsys=capsys)
    dry = run_cli("train", "gan", "--dry-run", "--set", bad, capsys=capsys)
    assert trained[0] == dry[0] == 2
    assert trained[2] == dry[2] and dry[2].startswith("genlab: error:")
    assert not run.exists()


def test_sample_to_an_unknown_format(tmp_path, capsys):
    run = str(tmp_path / "pca")
    run_cli("train", "pca", "--out", run, capsys=capsys)
    code, _, err = run_cli("sample", run, "--out", str(tmp_path / "s.txt"), capsys=capsys)
    assert code == 2 and ".npy" in err


def test_sample_writes_draws_to_npy_and_means_with_pixels_mean(tmp_path, capsys):
    import torch

    from genlab import api

    run = str(tmp_path / "pca")
    run_cli("train", "pca", "--out", run, capsys=capsys)
    model = api.load(run)
    for extra, expected in (
        ([], model.sample(4, generator=torch.Generator().manual_seed(0))),
        (["--pixels", "mean"], model.sample_means(4, generator=torch.Generator().manual_seed(0))),
    ):
        out = tmp_path / "s.npy"
        code, _, _ = run_cli("sample", run, "-n", "4", "--out", str(out), *extra, capsys=capsys)
        assert code == 0
        assert np.allclose(np.load(out), expected.numpy())


@pytest.mark.parametrize("bad", [["-n", "0"], ["-n", "-3"], ["-n", "many"]])
def test_bad_sample_count_is_rejected_by_the_parser(tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as info:
        main(["sample", "run", "--out", "a.npy", *bad])
    assert info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_console_entry_points():
    script = Path(sys.executable).parent / "genlab"
    for command in ([sys.executable, "-m", "genlab", "datasets"], [str(script), "datasets"]):
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "checkerboard" in result.stdout
