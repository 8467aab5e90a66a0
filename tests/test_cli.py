"""The command line end to end, through ``genlab.cli.main`` and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genlab.cli import main


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
    assert code == 0 and out.count("\n") == 14  # header, rule, twelve families
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


def test_sample_to_an_unknown_format(tmp_path, capsys):
    run = str(tmp_path / "pca")
    run_cli("train", "pca", "--out", run, capsys=capsys)
    code, _, err = run_cli("sample", run, "--out", str(tmp_path / "s.txt"), capsys=capsys)
    assert code == 2 and ".npy" in err


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
