"""A table of hostile inputs: each gets one clear ``genlab: error:`` line and damages nothing.

Every case builds its files in a fresh folder, runs the command line, and checks the exit code,
that the message names the problem, that no traceback escaped, and that every file that existed
before the command is byte-for-byte unchanged (and no file was added).

The cases after the first block are issue 14's classes: folders that are not runs (2), data
that changed under a run (3), trainer states out of range (4), special and oversized files and
images that cannot be read without loss (5), absurd sizes and paths (7), and crafted
``config.json`` and checkpoint metadata (8).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import zipfile
import zlib
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
from tests.hostile import edit_checkpoint, poison_weights, snapshot


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


def _cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (4, 4)).save(buffer, format="JPEG")
    return buffer.getvalue()


CMYK_JPEG = _cmyk_jpeg()
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


# -- issue 14: helpers for the cases below


def _user_folder(*extra: str, config: bytes | None = None) -> Callable[[Path], list[str]]:
    """A folder of the user's own files (named like a run's), then ``train --out`` into it."""

    def setup(folder: Path) -> list[str]:
        mine = folder / "mine"
        mine.mkdir()
        (mine / "model.safetensors").write_bytes(b"my weights")
        (mine / "samples.png").write_bytes(b"my picture")
        (mine / "metrics.jsonl").write_text('{"step": 1, "mine": true}\n')
        if config is not None:
            (mine / "config.json").write_bytes(config)
        return ["train", "pca", "--data", "digits", "--out", str(mine), *extra]

    return setup


def _a_file(*command: str) -> Callable[[Path], list[str]]:
    """A file ``notes.txt`` in the folder; ``FILE`` in ``command`` is its path."""

    def setup(folder: Path) -> list[str]:
        (folder / "notes.txt").write_text("mine")
        return [c.replace("FILE", str(folder / "notes.txt")) for c in command]

    return setup


def _trained_on_file(change: Callable[[Path], None], *command: str) -> Callable[[Path], list[str]]:
    """A pca run trained on ``data.npy``; then ``change(data.npy)`` and ``command``."""

    def setup(folder: Path) -> list[str]:
        rng = np.random.default_rng(0)
        np.save(folder / "data.npy", rng.normal(size=(60, 4)))
        genlab.fit("pca", str(folder / "data.npy"), out=folder / "run")
        change(folder / "data.npy")
        return [c.replace("RUN", str(folder / "run")) for c in command]

    return setup


def _rewrite_data(path: Path) -> None:
    np.save(path, np.random.default_rng(1).normal(size=(60, 4)))


def _trainer(**fields) -> Callable[[Path], None]:
    return lambda run: edit_checkpoint(run / "checkpoints/last.safetensors", trainer_fields=fields)


def _header(**metadata: str) -> Callable[[Path], None]:
    return lambda run: edit_checkpoint(run / "checkpoints/last.safetensors", **metadata)


def _special(
    kind: str, name: str, *, inside: str = "", command: str = "train"
) -> Callable[[Path], list[str]]:
    """``name`` (in an image folder ``inside``, if given) as a FIFO or a link to /dev/zero."""

    def setup(folder: Path) -> list[str]:
        where = folder / inside if inside else folder
        where.mkdir(exist_ok=True)
        if inside:
            Image.fromarray(PIXELS).save(where / "a.png")
        if kind == "fifo":
            os.mkfifo(where / name)
        else:
            (where / name).symlink_to(kind)
        data = where if inside else where / name
        return ["train", "pca", "--data", str(data), "--out", str(folder / "run")]

    return setup


def _png(depth: int, colour_type: int, channels: int) -> bytes:
    """A 4x4 PNG written by hand (PIL cannot write 16-bit colour)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 4, 4, depth, colour_type, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(4 * channels * depth // 8) for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def _class_folders(extra: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """Two class folders of images, then ``extra(images)``."""

    def setup(folder: Path) -> list[str]:
        images = folder / "images"
        for label in ("a", "b"):
            (images / label).mkdir(parents=True)
            Image.fromarray(PIXELS).save(images / label / "1.png")
        extra(images)
        return ["train", "pca", "--data", str(images), "--out", str(folder / "run")]

    return setup


def _npy_header_only(shape: tuple[int, ...]) -> Callable[[Path], list[str]]:
    """A .npy file whose header promises ``shape`` float64 but that holds 80 bytes."""

    def setup(folder: Path) -> list[str]:
        header = {"descr": "<f8", "fortran_order": False, "shape": shape}
        with open(folder / "big.npy", "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            handle.write(bytes(80))
        return ["train", "pca", "--data", str(folder / "big.npy"), "--out", str(folder / "run")]

    return setup


def _npz_member_bigger_than_stored(folder: Path) -> list[str]:
    """An .npz whose member's header promises 8e9 bytes inside a 100-byte member."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 1000)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(bytes(100))
    with zipfile.ZipFile(folder / "d.npz", "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
    return ["train", "pca", "--data", str(folder / "d.npz"), "--out", str(folder / "run")]


def _gzip_bomb(folder: Path) -> list[str]:
    """An IDX file whose header promises 10 4x4 images, followed by 64 MiB of zeros, gzipped."""
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as handle:
        handle.write(IDX_HEADER)
        for _ in range(64):
            handle.write(bytes(2**20))
    return ["train", "pca", "--data", str(folder / "train-images-idx3-ubyte.gz"),
            "--out", str(folder / "run")]  # fmt: skip


def _rgb16(folder: Path) -> list[str]:
    (folder / "images").mkdir()
    (folder / "images" / "a.png").write_bytes(_png(16, 2, 3))
    return ["train", "pca", "--data", str(folder / "images"), "--out", str(folder / "run")]


def _link_outside(images: Path) -> None:
    (images.parent / "outside.png").write_bytes((images / "a" / "1.png").read_bytes())
    (images / "a" / "2.png").symlink_to(images.parent / "outside.png")


def _run_file_is(device: str, name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).symlink_to(device)

    return damage


def _run_file_fifo(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        os.mkfifo(run / name)

    return damage


def _compare_into_user_folder(folder: Path) -> list[str]:
    (folder / "report.html").write_text("<p>my report</p>")
    return ["compare", "--models", "pca", "--budget", "smoke", "--out", str(folder)]


def _uint16_vae(folder: Path) -> list[str]:
    np.save(folder / "deep.npy", np.arange(6 * 16, dtype=np.uint16).reshape(6, 4, 4) * 600)
    return ["train", "vae", "--data", str(folder / "deep.npy"), "--out", str(folder / "run"),
            "--set", "likelihood=discretized_logistic"]  # fmt: skip


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
    # issue 14, class 2: never write into a folder that is not a run
    Case("out-user-folder", _user_folder(), "holds files that are not a genlab run"),
    Case("out-user-folder-overwrite", _user_folder("--overwrite"), "holds files that are not a genlab run"),
    Case("out-user-config-json", _user_folder(config=b'{"lr": 3}'), "not a genlab run"),
    Case("out-empty", lambda f: ["train", "pca", "--out", ""], "empty path"),
    Case("out-is-a-file", _a_file("train", "pca", "--out", "FILE"), "is a file, not a folder"),
    Case("out-below-a-file", _a_file("train", "pca", "--out", "FILE/run"), "is a file, not a folder"),
    Case("compare-into-user-folder", _compare_into_user_folder, "not a genlab comparison"),
    # class 3: the data a run was trained on
    Case("resume-data-changed", _trained_on_file(_rewrite_data, "resume", "RUN"), "the data changed"),
    Case("evaluate-data-changed", _trained_on_file(_rewrite_data, "evaluate", "RUN"), "pass --data"),
    Case("evaluate-data-gone", _trained_on_file(Path.unlink, "evaluate", "RUN"), "no longer exists"),
    # class 4: trainer state out of range
    Case("checkpoint-step-negative", _run("ae", _trainer(step=-5), "resume", "RUN"), "'step' = -5 is outside"),
    Case("checkpoint-step-huge", _run("ae", _trainer(step=10**12), "resume", "RUN"), "is outside"),
    Case("checkpoint-batch-out-of-epoch", _run("ae", _trainer(batch_in_epoch=999), "resume", "RUN"), "'batch_in_epoch'"),
    Case("checkpoint-elapsed-negative", _run("ae", _trainer(elapsed_seconds=-1.0), "resume", "RUN"), "'elapsed_seconds'"),
    # class 5: data read as it is, or refused
    Case("data-fifo", _special("fifo", "data.npy"), "FIFO"),
    Case("data-link-to-device", _special("/dev/zero", "data.npy"), "character device"),
    Case("images-fifo", _special("fifo", "b.png", inside="images"), "FIFO"),
    Case("images-link-to-device", _special("/dev/urandom", "b.png", inside="images"), "a symbolic link to /dev/urandom, outside"),
    Case("images-link-outside", _class_folders(_link_outside), "outside"),
    Case("images-beside-class-folders", _class_folders(lambda i: Image.fromarray(PIXELS).save(i / "stray.png")), "beside them"),
    Case("images-nested-folder", _class_folders(lambda i: (i / "a" / "deeper").mkdir()), "a folder inside the class folder"),
    Case("images-16-bit-colour", _rgb16, "16-bit colour"),
    Case("images-cmyk", _images(("a.jpg", CMYK_JPEG)), "image mode 'CMYK'"),
    Case("images-8-and-16-bit", _images(("a.png", PIXELS), ("b.png", PIXELS.astype(np.uint16) * 300)), "mixes 16-bit"),
    Case("npy-header-promises-terabytes", _npy_header_only((10**12, 10)), "more than genlab's limit"),
    Case("npy-header-promises-more-than-held", _npy_header_only((1000, 10)), "truncated or corrupt"),
    Case("npz-member-promises-more", _npz_member_bigger_than_stored, "truncated or corrupt"),
    Case("idx-gzip-bomb", _gzip_bomb, "holds more than 160 bytes"),
    Case("idx-header-overflow", _idx(bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3, b""), "more than genlab's limit"),
    Case("int64-beyond-float32", _npy(np.array([[0, 2**40]] * 10)), "holds integers exactly"),
    Case("values-beyond-float32-training", _npy(np.full((10, 2), 1e35)), "rescale"),
    Case("float64-beyond-float32", _npy(np.full((10, 2), 1e300)), "rescale"),
    Case("levels-too-many-for-likelihood", _uint16_vae, "sums over every level"),
    Case("run-weights-link-to-device", _run("pca", _run_file_is("/dev/zero", "model.safetensors"), "evaluate", "RUN"), "character device"),
    Case("run-config-fifo", _run("pca", _run_file_fifo("config.json"), "evaluate", "RUN"), "FIFO"),
    # class 7: absurd sizes and paths
    Case("set-hidden-absurd", _train_ae("--set", "hidden=2000000000"), "parameters"),
    Case("sample-picture-too-large", _run("pca", _nothing, "sample", "RUN", "-n", "1000000", "--out", "RUN/s.png"), "pixels"),
    Case("sample-out-is-a-folder", _run("pca", lambda r: (r / "s.npy").mkdir(), "sample", "RUN", "--out", "RUN/s.npy"), "is a folder"),
    Case("evaluate-n-samples-absurd", _run("pca", _nothing, "evaluate", "RUN", "--metrics", "fid", "--n-samples", "1e8"), "too many"),
    Case("evaluate-cache-is-a-file", _run("pca", _nothing, "evaluate", "RUN", "--metrics", "fid", "--cache", "RUN/config.json"), "is a file"),
    Case("seed-negative", _train("--seed", "-1"), "seed must be an integer"),
    Case("compare-same-seed-twice", lambda f: ["compare", "--seeds", "0,0", "--out", str(f / "c")], "distinct"),
    # class 8: crafted config.json and checkpoint metadata
    Case("config-not-an-object", _run("pca", _write("config.json", b"[1, 2]"), "evaluate", "RUN"), "not a genlab run configuration"),
    Case("config-no-marker", _run("pca", _config(lambda c: c.pop("format")), "evaluate", "RUN"), "marker"),
    Case("config-extra-key", _run("pca", _config(lambda c: c.update(extra=1)), "evaluate", "RUN"), "unknown field 'extra'"),
    Case("config-model-wrong-type", _run("pca", _config(lambda c: c.update(model="big")), "evaluate", "RUN"), "field 'model' must be an object"),
    Case("config-seed-huge", _run("pca", _config(lambda c: c.update(seed=2**70)), "evaluate", "RUN"), "seed must be an integer"),
    Case("config-seed-text", _run("pca", _config(lambda c: c.update(seed="0")), "evaluate", "RUN"), "seed must be an integer"),
    Case("config-info-missing", _run("pca", _config(lambda c: c["data"].pop("info")), "evaluate", "RUN"), "missing field 'data.info'"),
    Case("config-info-bad-kind", _run("pca", _config(lambda c: c["data"]["info"].update(kind="audio")), "evaluate", "RUN"), "data.info.kind"),
    Case("config-info-negative-shape", _run("pca", _config(lambda c: c["data"]["info"].update(event_shape=[1, -8, 8])), "evaluate", "RUN"), "data.info.event_shape"),
    Case("config-train-negative-steps", _run("ae", _config(lambda c: c["train"].update(steps=-5, epochs=None)), "resume", "RUN"), "steps must be a positive"),
    Case("config-model-huge", _run("ae", _config(lambda c: c["model"].update(hidden=[2_000_000_000])), "evaluate", "RUN"), "parameters"),
    Case("weights-nan", _run("ae", lambda r: poison_weights(r / "model.safetensors"), "evaluate", "RUN"), "NaN"),
    Case("checkpoint-nan", _run("ae", lambda r: poison_weights(r / "checkpoints/last.safetensors"), "resume", "RUN"), "NaN"),
    Case("checkpoint-trainer-missing-field", _run("ae", _trainer(epoch=...), "resume", "RUN"), "'epoch' is missing"),
    Case("checkpoint-trainer-extra-field", _run("ae", _trainer(rogue=1), "resume", "RUN"), "'rogue' is unknown"),
    Case("checkpoint-trainer-wrong-type", _run("ae", _trainer(step="5"), "resume", "RUN"), "must be int"),
    Case("checkpoint-trainer-not-json-object", _run("ae", _header(trainer="[1]"), "resume", "RUN"), "not a JSON object"),
    Case("checkpoint-optim-not-object", _run("ae", _header(optim="[]"), "resume", "RUN"), "'optim' is not a JSON object"),
    Case("checkpoint-optim-wrong-shape", _run("ae", _header(optim='{"main": {"scalars": 3}}'), "resume", "RUN"), "does not fit"),
]  # fmt: skip


def test_the_corpus_is_large():
    assert len(CASES) >= 90
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(case, tmp_path, trained, capsys, monkeypatch):
    TRAINED[:] = [trained]
    monkeypatch.chdir(tmp_path)  # the pickle exploit would write ./PWNED
    args = case.setup(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("genlab: error:") and err.count("\n") == 1, err
    assert case.message in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before, "the command changed or created files"
    assert not (tmp_path / "PWNED").exists()
