"""``genlab score``: any model's samples on evaluate's card, sample files and folders, errors."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from prdc import compute_prdc
from safetensors.torch import save_file
from torchmetrics.image.fid import _compute_fid

import genlab
from genlab.cli import main
from genlab.data.samples import read_sample_set, resize_images
from genlab.errors import ConfigError, DataError
from genlab.metrics import domain_network
from genlab.metrics.sample_quality import (
    SAMPLE_METRICS,
    comparability_warnings,
    default_metrics,
    to_data_grid,
)

SMOKE = ["--bootstrap", "10"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("score") / "pca"
    assert main(["train", "pca", "--out", str(path), "--set", "latent_dim=8"]) == 0
    return str(path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("score-cache"))


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return folder


def digit_pngs(digits, n, size):
    """``n`` digits as 8-bit PNG arrays of ``size`` x ``size`` (PIL bicubic from 8x8)."""
    images = (digits.x_test[:n, 0].numpy() * 255 / 16).round().astype(np.uint8)
    return [np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images]


def test_score_of_saved_samples_equals_evaluate_of_the_run(run, cache, tmp_path, capsys):
    """The acceptance test: same seed and sizes, same numbers, every metric of the card."""
    samples = tmp_path / "s.npy"
    assert main(["sample", run, "-n", "300", "--seed", "5", "--out", str(samples)]) == 0
    capsys.readouterr()
    common = ["--seed", "5", *SMOKE, "--cache", cache, "--json"]
    assert main(["evaluate", run, "--metrics", "all", "--n-samples", "300", *common]) == 0
    evaluated = last_json(capsys)
    assert main(["score", str(samples), "--data", "digits", *common]) == 0
    scored = last_json(capsys)["samples"][str(samples)]
    assert scored["n_samples"] == 300 and scored["features"] == "domain"
    for metric_key in ("fid", "fid_inf", "kid", "precision", "is", "confident",
                       "memorization_fraction", "birthday_threshold", "cas",
                       "fresh_disc_accuracy"):  # fmt: skip
        assert metric_key in scored
    for key, value in scored.items():
        assert evaluated[key] == value, key
    # the Python API: the same fields and numbers
    result = genlab.score(samples, "digits", seed=5, n_bootstrap=10, cache_dir=cache)
    assert result.to_json() == scored
    assert result["fid"] == scored["fid"] and result.n_samples == 300


def test_each_metric_has_its_own_random_stream(run, cache):
    samples = genlab.load(run).sample(200, generator=torch.Generator().manual_seed(0))
    alone = genlab.score(samples, "digits", metrics="kid", cache_dir=cache)
    together = genlab.score(samples, "digits", metrics="fid,fid_inf,kid", cache_dir=cache)
    assert alone["kid"] == together["kid"] and alone["kid_std"] == together["kid_std"]


def test_confident_is_the_domain_networks_share_of_sure_predictions(digits, cache):
    """The real test digits scored as samples are exactly as confident as the reference, and
    the share is the fraction of rows whose largest class probability reaches 0.9."""
    real = genlab.score(digits.x_test, digits, metrics="confident", cache_dir=cache)
    assert real["confident"] == real["confident_real"] > 0.5
    net = domain_network(digits, cache_dir=cache)
    noise = torch.rand(300, *digits.info.event_shape, generator=torch.Generator().manual_seed(0))
    noisy = genlab.score(noise * 16, digits, metrics="confident", cache_dir=cache)
    top = net.probabilities(to_data_grid(noise * 16, digits.info)).max(1).values
    assert noisy["confident"] == float((top >= 0.9).double().mean()) < real["confident"]


def test_pixel_features_match_torchmetrics_fid_and_prdc(run, digits):
    samples = genlab.load(run).sample(300, generator=torch.Generator().manual_seed(1))
    result = genlab.score(samples, digits, metrics="fid,prdc", features="pixels", n_bootstrap=0)
    assert result.features == "pixels" and result.feature_extractor == "data coordinates (64)"
    fake = to_data_grid(samples, digits.info).reshape(300, -1).double()
    real = digits.x_test.reshape(len(digits.x_test), -1).double()
    expected = _compute_fid(real.mean(0), real.T.cov(), fake.mean(0), fake.T.cov())
    assert result["fid"] == pytest.approx(float(expected), rel=1e-6)
    reference = compute_prdc(real.numpy(), fake.numpy(), 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert result[key] == pytest.approx(reference[key], abs=1e-9), key


def test_a_callable_feature_extractor(run, digits):
    def flatten(x):
        return x.flatten(1)

    samples = genlab.load(run).sample(200, generator=torch.Generator().manual_seed(2))
    custom = genlab.score(samples, digits, metrics="fid,kid", features=flatten, n_bootstrap=0)
    pixels = genlab.score(samples, digits, metrics="fid,kid", features="pixels", n_bootstrap=0)
    assert custom.features == "flatten" and custom.feature_extractor == "user extractor flatten"
    assert custom["fid"] == pixels["fid"] and custom["kid"] == pixels["kid"]


def test_n_samples_subsamples_with_the_seed(run, cache, tmp_path, capsys):
    samples = tmp_path / "s.npy"
    np.save(samples, genlab.load(run).sample(300, generator=torch.Generator()).numpy())
    args = ["score", samples, "--data", "digits", "--metrics", "fid,prdc", "--cache", cache]
    results = []
    for seed in (0, 0, 1):
        code, out, err = cli(capsys, *args, "--n-samples", 100, "--seed", seed, "--json")
        assert code == 0, err
        results.append(json.loads(out.strip().splitlines()[-1])["samples"][str(samples)])
    assert results[0]["n_samples"] == 100
    assert results[0] == results[1] and results[0]["coverage"] != results[2]["coverage"]
    code, _, err = cli(capsys, *args, "--n-samples", 301)
    assert code == 2 and "holds 300 samples" in err


def test_two_folders_of_other_sizes_are_resized_and_compared(digits, cache, tmp_path, capsys):
    big = write_pngs(tmp_path / "big", digit_pngs(digits, 60, 16))
    odd = write_pngs(tmp_path / "odd", digit_pngs(digits, 40, 12))
    code, out, err = cli(
        capsys, "score", big, odd, "--data", "digits", "--metrics", "fid,prdc",
        "--cache", cache, "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    for folder, size in ((big, 16), (odd, 12)):
        notes = summary["samples"][str(folder)]["notes"]
        assert any(f"resized from {size}x{size} to 8x8" in note for note in notes)
        assert any("0..255 onto the value range of digits (0..16)" in note for note in notes)
        assert np.isfinite(summary["samples"][str(folder)]["fid"])
    assert any("different sample sizes" in w for w in summary["warnings"])
    assert "warning: different sample sizes" in out


def test_resize_is_pils_bicubic_and_clamped(digits, tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(16, 16), (37, 23), (4, 4)]:
        image = rng.uniform(0, 255, shape).astype(np.float32)
        expected = np.asarray(Image.fromarray(image).resize((8, 8), Image.BICUBIC))
        expected = expected.clip(image.min(), image.max())
        out = resize_images(torch.from_numpy(image)[None, None], (8, 8))[0, 0].numpy()
        np.testing.assert_allclose(out, expected, atol=2e-3)
    folder = write_pngs(tmp_path / "f", digit_pngs(digits, 3, 16))
    read = read_sample_set(folder, digits.info)
    stored = np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())])
    expected = np.stack(
        [
            np.asarray(Image.fromarray(a.astype(np.float32)).resize((8, 8), Image.BICUBIC))
            for a in stored
        ]
    ).clip(stored.min(), stored.max())
    np.testing.assert_allclose(read.x[:, 0].numpy(), expected * 16 / 255, atol=1e-3)


def test_bad_sample_sets_get_one_clear_error(digits, tmp_path, capsys):
    mixed = write_pngs(tmp_path / "mixed", digit_pngs(digits, 3, 8) + digit_pngs(digits, 1, 9))
    (tmp_path / "empty").mkdir()
    corrupt = write_pngs(tmp_path / "corrupt", digit_pngs(digits, 3, 8))
    (corrupt / "0001.png").write_bytes(b"\x89PNG not really")
    rgb = tmp_path / "rgb"
    write_pngs(rgb, [np.zeros((8, 8, 3), dtype=np.uint8) + i for i in range(12)])
    np.save(tmp_path / "flat.npy", np.zeros((20, 64), dtype=np.float32))
    np.savez(tmp_path / "labels.npz", x=np.zeros((20, 8, 8)), y=np.full(20, 12))
    cases = {
        mixed: "differ in size",
        tmp_path / "empty": "holds no images",
        corrupt: "unreadable image",
        rgb: "3 channel(s) but digits has 1",
        tmp_path / "flat.npy": "vectors of shape (64,) but digits holds images",
        tmp_path / "labels.npz": "class indices 0..9",
        tmp_path / "missing": "no such file",
    }
    for path, message in cases.items():
        code, out, err = cli(capsys, "score", path, "--data", "digits", "--metrics", "fid")
        assert code == 2 and message in err, (path, err)
        assert "Traceback" not in err and out == ""
    for args, message in [
        (["--metrics", "fid,sharpness"], "unknown metric"),
        (["--features", "resnet:x.pth"], "unknown features"),
        (["--features", "inception_v3:nowhere.pth"], "no weights file"),
    ]:
        code, _, err = cli(capsys, "score", tmp_path / "flat.npy", "--data", "digits", *args)
        assert code == 2 and message in err, err
    np.save(tmp_path / "few.npy", np.zeros((5, 8, 8), dtype=np.float32))
    with pytest.raises(DataError, match="at least 10 samples"):
        genlab.score(tmp_path / "few.npy", digits, metrics="fid")
    with pytest.raises(ConfigError, match="carries its labels"):
        genlab.score(read_sample_set(tmp_path / "few.npy", digits.info), digits, labels=[1])


def test_unit_range_warning_labels_and_unlabelled_data(digits, ring, run, cache, tmp_path):
    g = torch.Generator().manual_seed(0)
    unit = torch.rand(50, 1, 8, 8, generator=g)  # [0, 1] samples against digits' 0..16
    (note,) = read_sample_set(unit, digits.info).notes
    assert note.startswith("warning: array lies in [") and "digits spans [0, 16]" in note
    assert read_sample_set(unit * 16, digits.info).notes == ()  # in the data's units
    x = genlab.load(run).sample(120, generator=g)
    np.savez(tmp_path / "labelled.npz", x=x.numpy(), y=np.arange(120) % 10)
    result = genlab.score(tmp_path / "labelled.npz", digits, metrics="cas", cache_dir=cache)
    assert result["cas_labels"] == "given" and 0 <= result["cas"] <= 1
    assert default_metrics(ring) == [
        m for m in SAMPLE_METRICS if m not in ("is", "confident", "cas")
    ]
    points = ring.x_test[:200] + 0.01
    result = genlab.score(points, ring, metrics="fid,prdc,memorization")
    assert result.features == "pixels" and result["precision"] > 0.5
    with pytest.raises(DataError, match="labelled"):
        genlab.score(points, ring, metrics="is")
    with pytest.raises(DataError, match="labelled"):
        genlab.score(points, ring, metrics="fid", features="domain")


def test_birthday_pairs_are_data_and_the_cli_draws_them(digits, cache, tmp_path, capsys):
    copies = digits.x_train[:40].repeat(8, 1, 1, 1)  # 320 samples, each image 8 times
    result = genlab.score(copies, digits, metrics="birthday")
    a, b = result.birthday_pairs
    assert a.shape[1:] == (1, 8, 8) and torch.equal(a, b)  # exact copies are the closest pairs
    assert result["birthday_support"] <= 40 * 4  # a support of 40 is found small
    np.save(tmp_path / "copies.npy", copies.numpy())
    out = tmp_path / "out"
    code, _, err = cli(
        capsys, "score", tmp_path / "copies.npy", "--data", "digits", "--metrics", "birthday",
        "--out", out, "--cache", cache,
    )  # fmt: skip
    assert code == 0, err
    assert (out / "birthday_pairs.png").stat().st_size > 0
    saved = json.loads((out / "score.json").read_text())
    assert saved["samples"][str(tmp_path / "copies.npy")]["birthday_pairs"].endswith(".png")


def test_metrics_and_data_import_neither_report_nor_train():
    """Metrics return data; only report/ and the CLI write files (issue 13, part 5). Every
    import statement, at module level or inside a function, of metrics/, data/ and nn/."""
    root = Path(genlab.__file__).parent
    for layer in ("metrics", "data", "nn"):
        for path in (root / layer).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    assert not name.startswith(("genlab.report", "genlab.train")), (path, name)


def test_inception_features_through_the_command_line(tmp_path, capsys):
    from tests.test_inception import generated_state_dict

    save_file(generated_state_dict(seed=3), tmp_path / "pt_inception.safetensors")
    g = np.random.default_rng(0)
    rgb = g.integers(0, 256, (20, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", x_train=rgb[:10], x_test=rgb[10:])
    np.save(tmp_path / "s.npy", g.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8))
    weights = f"inception_v3:{tmp_path / 'pt_inception.safetensors'}"
    code, out, err = cli(
        capsys, "score", tmp_path / "s.npy", "--data", tmp_path / "data.npz",
        "--metrics", "fid,kid,prdc", "--features", weights, "--bootstrap", 0, "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])["samples"][str(tmp_path / "s.npy")]
    assert result["features"] == "inception_v3" and result["fid"] >= 0
    assert result["feature_extractor"].startswith("inception_v3 weights sha256:")
    assert any("resized from 16x16 to 12x12" in note for note in result["notes"])


def test_comparability_warnings_name_what_differs(run, cache):
    samples = genlab.load(run).sample(200, generator=torch.Generator().manual_seed(0))
    a = genlab.score(samples, "digits", metrics="fid", cache_dir=cache, n_bootstrap=0)
    b = genlab.score(samples[:150], "digits", metrics="fid", cache_dir=cache, n_bootstrap=0)
    c = genlab.score(samples, "digits", metrics="fid", features="pixels", n_bootstrap=0)
    assert comparability_warnings({"a": a, "a again": a}) == []
    (sizes,) = comparability_warnings({"a": a, "b": b})
    assert "sample sizes (a: 200, b: 150)" in sizes
    (features,) = comparability_warnings({"a": a, "c": c})
    assert "feature extractors" in features and "data coordinates" in features
