"""A table of hostile inputs: each gets one clear ``genlab: error:`` line and damages nothing.

Every case builds its files in a fresh folder, runs the command line, and checks the exit code,
that the message names the problem, that no traceback escaped, and that every file that existed
before the command is byte-for-byte unchanged (and no file was added).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import genlab
from genlab.cli import main
from genlab.runs import LOCK_FILE


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # builds files in the folder, returns the CLI arguments
    message: str  # a fragment the error must contain


def _npy(array: np.ndarray, name: str = "data.npy") -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        np.save(folder / name, array, allow_pickle=True)
        return ["train", "pca", "--data", str(folder / name), "--out", str(folder / "run")]

    return setup


def _file(name: str, content: bytes) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        (folder / name).write_bytes(content)
        return ["train", "pca", "--data", str(folder / name), "--out", str(folder / "run")]

    return setup


def _npz(**arrays: np.ndarray) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        np.savez(folder / "d.npz", **arrays)
        return ["train", "pca", "--data", str(folder / "d.npz"), "--out", str(folder / "run")]

    return setup


def _truncated_npz(folder: Path) -> list[str]:
    np.savez(folder / "d.npz", x=np.zeros((100, 4)))
    raw = (folder / "d.npz").read_bytes()
    (folder / "d.npz").write_bytes(raw[: len(raw) // 2])
    return ["train", "pca", "--data", str(folder / "d.npz"), "--out", str(folder / "run")]


def _truncated_npy(folder: Path) -> list[str]:
    np.save(folder / "d.npy", np.zeros((100, 4)))
    raw = (folder / "d.npy").read_bytes()
    (folder / "d.npy").write_bytes(raw[:300])
    return ["train", "pca", "--data", str(folder / "d.npy"), "--out", str(folder / "run")]


def _images(*files: tuple[str, bytes | np.ndarray]) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        images = folder / "images"
        images.mkdir()
        for name, content in files:
            if isinstance(content, np.ndarray):
                Image.fromarray(content).save(images / name)
            else:
                (images / name).write_bytes(content)
        return ["train", "pca", "--data", str(images), "--out", str(folder / "run")]

    return setup


def _idx(header: bytes, body: bytes, compress: bool = False) -> Callable[[Path], list[str]]:
    raw = header + body
    return _file(
        "train-images-idx3-ubyte" + (".gz" if compress else ""),
        gzip.compress(raw) if compress else raw,
    )


IDX_HEADER = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (4).to_bytes(4, "big") * 2
PIXELS = np.zeros((4, 4), dtype=np.uint8)


def _train(*extra: str) -> Callable[[Path], list[str]]:
    return lambda folder: [
        "train",
        "pca",
        "--data",
        "digits",
        "--out",
        str(folder / "run"),
        *extra,
    ]


def _train_ae(*extra: str) -> Callable[[Path], list[str]]:
    return lambda folder: ["train", "ae", "--data", "digits", "--out", str(folder / "run"), *extra]


# -- runs: a trained pca run and ae run are copied into the folder, then damaged


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    genlab.fit("pca", "digits", out=root / "pca")
    genlab.fit("ae", "digits", out=root / "ae", latent_dim=4, hidden=(16,), epochs=2)
    return root


TRAINED: list[Path] = []


def _run(
    family: str, damage: Callable[[Path], None], *command: str
) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        shutil.copytree(TRAINED[0] / family, folder / "run")
        damage(folder / "run")
        return [c.replace("RUN", str(folder / "run")) for c in command]

    return setup


def _write(relative: str, content: bytes) -> Callable[[Path], None]:
    return lambda run: (run / relative).write_bytes(content)


def _truncate(relative: str, keep: int) -> Callable[[Path], None]:
    return lambda run: (run / relative).write_bytes((run / relative).read_bytes()[:keep])


def _config(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        config = json.loads((run / "config.json").read_text())
        edit(config)
        (run / "config.json").write_text(json.dumps(config))

    return damage


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path("PWNED"),))


def _other_family_weights(run: Path) -> None:
    shutil.copy(TRAINED[0] / "pca" / "model.safetensors", run / "model.safetensors")


def _other_shape_weights(run: Path) -> None:
    model = genlab.fit("ae", "digits", latent_dim=5, hidden=(16,), epochs=1)
    genlab.train.checkpoint.save_model(run / "model.safetensors", model)


def _nothing(run: Path) -> None:
    return None


CASES = [
    # data files
    Case("npy-nan", _npy(np.array([[0.0, np.nan]] * 10)), "NaN"),
    Case("npy-inf", _npy(np.array([[0.0, np.inf]] * 10)), "infinite"),
    Case("npy-empty", _npy(np.zeros((0, 3))), "empty"),
    Case("npy-rank1", _npy(np.zeros(10)), "rank 1"),
    Case("npy-rank5", _npy(np.zeros((3, 2, 2, 2, 2))), "rank 5"),
    Case("npy-ragged", _npy(np.array([np.zeros(2), np.zeros(3)], dtype=object)), "ragged"),
    Case("npy-strings", _npy(np.array([["a", "b"]] * 5)), "not numeric"),
    Case("npy-no-channels", _npy(np.zeros((3, 9, 9, 9))), "channel axis"),
    Case("npy-truncated", _truncated_npy, "not a readable .npy"),
    Case("npy-garbage", _file("x.npy", b"definitely not numpy"), "not a readable .npy"),
    Case("npz-truncated", _truncated_npz, "not a readable .npz"),
    Case("npz-no-key", _npz(images=np.zeros((3, 2))), "no data key"),
    Case("npz-no-test", _npz(x_train=np.zeros((3, 2))), "no 'x_test'"),
    Case("npz-shapes", _npz(x_train=np.zeros((5, 3)), x_test=np.zeros((2, 4))), "test examples"),
    Case("npz-labels", _npz(x=np.zeros((5, 3)), y=np.zeros(4, dtype=int)), "5 examples but 4 labels"),
    Case("npz-float-labels", _npz(x=np.zeros((5, 3)), y=np.zeros(5)), "1-D integer array"),
    Case("images-text-file", _images(("a.png", PIXELS), ("notes.txt", b"hi")), "not an image file"),
    Case("images-broken", _images(("a.png", PIXELS), ("b.png", b"garbage")), "unreadable image"),
    Case("images-sizes", _images(("a.png", PIXELS), ("b.png", np.zeros((5, 4), np.uint8))), "differ in size"),
    Case("images-empty", _images(), "no images"),
    Case("idx-magic", _idx(b"\x12\x34\x08\x03", bytes(20)), "wrong IDX magic"),
    Case("idx-truncated", _idx(IDX_HEADER, bytes(100)), "truncated or corrupt"),
    Case("idx-gzip-truncated", _file("t-images-idx3-ubyte.gz", gzip.compress(IDX_HEADER + bytes(160))[:30]), "unreadable IDX"),
    Case("unknown-spec", _train("--data", "mnistt"), "unknown dataset"),
    Case("csv-file", _file("x.csv", b"1,2\n"), "unsupported file type"),
    # arguments and settings
    Case("unknown-family", lambda f: ["train", "vae9", "--out", str(f / "run")], "unknown model family"),
    Case("unknown-set-key", _train_ae("--set", "latnt_dim=3"), "unknown option 'latnt_dim'"),
    Case("set-without-value", _train_ae("--set", "latent_dim"), "expects key=value"),
    Case("set-wrong-type", _train_ae("--set", "latent_dim=abc"), "must be an integer"),
    Case("set-negative", _train_ae("--set", "latent_dim=-3"), "latent_dim must be >= 1"),
    Case("set-absurd-epochs", _train_ae("--set", "epochs=1e12"), "absurd"),
    Case("set-zero-batch", _train_ae("--set", "batch_size=0"), "batch_size must be a positive"),
    Case("set-bad-literal", _train_ae("--set", "architecture=rnn"), "must be one of"),
    Case("set-bad-fraction", _train_ae("--set", "val_fraction=2"), "val_fraction"),
    Case("pca-too-many-components", _train("--set", "latent_dim=64"), "smaller than the 64"),
    Case("unknown-device", _train_ae("--device", "tpu"), "unknown device"),
    Case("epochs-twice", _train_ae("--epochs", "2", "--set", "epochs=3"), "given twice"),
    Case("compare-no-models", lambda f: ["compare", "--models", ",", "--out", str(f / "c")], "names no family"),
    # runs, configs and checkpoints
    Case("run-missing", lambda f: ["evaluate", str(f / "nope")], "no such run directory"),
    Case("not-a-run", lambda f: ["evaluate", str(f)], "not a genlab run"),
    Case("config-corrupt", _run("pca", _write("config.json", b"{oops"), "evaluate", "RUN"), "corrupt JSON"),
    Case("config-missing-key", _run("pca", _config(lambda c: c.pop("family")), "evaluate", "RUN"), "missing"),
    Case("config-unknown-family", _run("pca", _config(lambda c: c.update(family="zzz")), "evaluate", "RUN"), "unknown model family"),
    Case("config-bad-model-option", _run("pca", _config(lambda c: c["model"].update(depth=3)), "evaluate", "RUN"), "unknown option"),
    Case("weights-truncated", _run("pca", _truncate("model.safetensors", 100), "evaluate", "RUN"), "truncated or corrupt"),
    Case("weights-pickle", _run("pca", _write("model.safetensors", pickle.dumps(_Exploit())), "evaluate", "RUN"), "never unpickles"),
    Case("weights-garbage", _run("pca", _write("model.safetensors", b"\x00" * 64), "evaluate", "RUN"), "not a safetensors file"),
    Case("weights-foreign", _run("pca", lambda r: save_file({"w": torch.zeros(2)}, r / "model.safetensors"), "evaluate", "RUN"), "not a genlab"),
    Case("weights-other-family", _run("ae", _other_family_weights, "evaluate", "RUN"), "'pca' family cannot be loaded"),
    Case("weights-other-shape", _run("ae", _other_shape_weights, "sample", "RUN", "--out", "RUN/s.npy"), "has shape"),
    Case("checkpoint-truncated", _run("ae", _truncate("checkpoints/last.safetensors", 5000), "resume", "RUN", "--no-progress"), "truncated or corrupt"),
    Case("sample-txt", _run("pca", _nothing, "sample", "RUN", "--out", "RUN/s.txt"), "use a .npy"),
    Case("sample-absurd-n", _run("pca", _nothing, "sample", "RUN", "-n", "99999999", "--out", "RUN/s.npy"), "too many"),
    Case("evaluate-wrong-shape", _run("pca", _nothing, "evaluate", "RUN", "--data", "ring"), "shape (2,)"),
    Case("train-over-existing-run", _run("pca", _nothing, "train", "pca", "--out", "RUN"), "already holds a run"),
]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file under ``folder``; a run's ``.lock`` counts by its existence
    alone (its content names the last process that held the lock: the lock's own state)."""
    return {
        str(p.relative_to(folder)): "" if p.name == LOCK_FILE else _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_corpus_is_large():
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(case, tmp_path, trained, capsys, monkeypatch):
    TRAINED[:] = [trained]
    monkeypatch.chdir(tmp_path)  # the pickle exploit would write ./PWNED
    args = case.setup(tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("genlab: error:") and err.count("\n") == 1, err
    assert case.message in err, err
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before, "the command changed or created files"
    assert not (tmp_path / "PWNED").exists()
