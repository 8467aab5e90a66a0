"""The FID Inception-V3: state-dict layout of the standard weights file, loading, forward pass.

The expected layout is written down here independently of ``genlab.nn.inception``, from the
published architecture (Szegedy et al. 2016, Figures 5-7 and Table 1) as the 2015 TensorFlow
graph and pytorch-fid's ``pt_inception-2015-12-05`` file name it: every convolution is a
``<name>.conv.weight`` without bias followed by a batch norm ``<name>.bn.{weight, bias,
running_mean, running_var}``; the classifier ``fc`` has 1,008 outputs. No real weights are
available here, so agreement with pytorch-fid's numbers is not tested (README says so).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from genlab.data.dataset import DataInfo
from genlab.errors import CheckpointError, ConfigError
from genlab.metrics.feature_spaces import network_space, parse_features, read_state_dict
from genlab.nn.inception import FIDInceptionV3, _tf_avg_pool


def block_a(name, cin, pool):
    return [
        (f"{name}.branch1x1", cin, 64, 1, 1),
        (f"{name}.branch5x5_1", cin, 48, 1, 1),
        (f"{name}.branch5x5_2", 48, 64, 5, 5),
        (f"{name}.branch3x3dbl_1", cin, 64, 1, 1),
        (f"{name}.branch3x3dbl_2", 64, 96, 3, 3),
        (f"{name}.branch3x3dbl_3", 96, 96, 3, 3),
        (f"{name}.branch_pool", cin, pool, 1, 1),
    ]


def block_c(name, c7):
    return [
        (f"{name}.branch1x1", 768, 192, 1, 1),
        (f"{name}.branch7x7_1", 768, c7, 1, 1),
        (f"{name}.branch7x7_2", c7, c7, 1, 7),
        (f"{name}.branch7x7_3", c7, 192, 7, 1),
        (f"{name}.branch7x7dbl_1", 768, c7, 1, 1),
        (f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
        (f"{name}.branch7x7dbl_3", c7, c7, 1, 7),
        (f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
        (f"{name}.branch7x7dbl_5", c7, 192, 1, 7),
        (f"{name}.branch_pool", 768, 192, 1, 1),
    ]


def block_e(name, cin):
    return [
        (f"{name}.branch1x1", cin, 320, 1, 1),
        (f"{name}.branch3x3_1", cin, 384, 1, 1),
        (f"{name}.branch3x3_2a", 384, 384, 1, 3),
        (f"{name}.branch3x3_2b", 384, 384, 3, 1),
        (f"{name}.branch3x3dbl_1", cin, 448, 1, 1),
        (f"{name}.branch3x3dbl_2", 448, 384, 3, 3),
        (f"{name}.branch3x3dbl_3a", 384, 384, 1, 3),
        (f"{name}.branch3x3dbl_3b", 384, 384, 3, 1),
        (f"{name}.branch_pool", cin, 192, 1, 1),
    ]


# (name, in channels, out channels, kernel height, kernel width) of every convolution
CONVOLUTIONS = [
    ("Conv2d_1a_3x3", 3, 32, 3, 3),
    ("Conv2d_2a_3x3", 32, 32, 3, 3),
    ("Conv2d_2b_3x3", 32, 64, 3, 3),
    ("Conv2d_3b_1x1", 64, 80, 1, 1),
    ("Conv2d_4a_3x3", 80, 192, 3, 3),
    *block_a("Mixed_5b", 192, 32),
    *block_a("Mixed_5c", 256, 64),
    *block_a("Mixed_5d", 288, 64),
    ("Mixed_6a.branch3x3", 288, 384, 3, 3),
    ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1),
    ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3),
    ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3),
    *block_c("Mixed_6b", 128),
    *block_c("Mixed_6c", 160),
    *block_c("Mixed_6d", 160),
    *block_c("Mixed_6e", 192),
    ("Mixed_7a.branch3x3_1", 768, 192, 1, 1),
    ("Mixed_7a.branch3x3_2", 192, 320, 3, 3),
    ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1),
    ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
    ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1),
    ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3),
    *block_e("Mixed_7b", 1280),
    *block_e("Mixed_7c", 2048),
]


def expected_shapes(with_counters: bool) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, cin, cout, kh, kw in CONVOLUTIONS:
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for buffer in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{buffer}"] = (cout,)
        if with_counters:
            shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"] = (1008, 2048)
    shapes["fc.bias"] = (1008,)
    return shapes


def generated_state_dict(with_counters: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the standard file's layout (variances positive, as a real file's)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in expected_shapes(with_counters).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


def test_module_layout_is_the_published_one():
    assert len(CONVOLUTIONS) == 94  # the 2015 graph's convolutions
    net = FIDInceptionV3()
    actual = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert actual == expected_shapes(with_counters=True)
    assert sum(p.numel() for p in net.parameters()) == 23_850_960
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("with_counters", [False, True])
def test_generated_standard_state_dict_loads_strictly(tmp_path, with_counters):
    """A converted file may lack the batch-norm step counters; both forms load strictly."""
    state = generated_state_dict(with_counters)
    net = FIDInceptionV3()
    net.load_state_dict(state, strict=True)
    for key, value in state.items():
        assert torch.equal(net.state_dict()[key], value)
    # the same tensors from both file formats, through genlab's reader
    save_file(state, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pth")
    for file in ("w.safetensors", "w.pth"):
        read = read_state_dict(tmp_path / file)
        assert read.keys() == state.keys()
        assert all(torch.equal(read[k], state[k]) for k in state)


def test_wrong_or_foreign_weights_are_refused(tmp_path):
    info = DataInfo("rgb", (3, 8, 8), "image", levels=256, value_range=(0.0, 255.0))
    state = generated_state_dict()
    broken = dict(state)
    del broken["Mixed_6b.branch7x7_2.conv.weight"]
    broken["fc.weight"] = torch.zeros(1000, 2048)
    save_file(broken, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match="Mixed_6b.branch7x7_2.conv.weight") as error:
        network_space("inception_v3", tmp_path / "broken.safetensors", info)
    assert "fc.weight" in str(error.value)
    # a pickled object is not a weights-only state dict: refused, never executed
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")  # a whole pickled module
    with pytest.raises(CheckpointError, match="never unpickles"):
        read_state_dict(tmp_path / "model.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="junk"):
        read_state_dict(tmp_path / "junk.safetensors")
    with pytest.raises(ConfigError, match="no weights file"):
        parse_features(f"inception_v3:{tmp_path / 'missing.pth'}")
    with pytest.raises(ConfigError, match="unknown features"):
        parse_features("resnet50")
    save_file(state, tmp_path / "w.safetensors")
    vectors = DataInfo("v", (4,), "vector")
    with pytest.raises(ConfigError, match="images with 1 or 3 channels"):
        network_space("inception_v3", tmp_path / "w.safetensors", vectors)


def test_forward_gives_2048_features_for_any_input_size():
    net = FIDInceptionV3().eval()
    net.load_state_dict(generated_state_dict(seed=1))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for shape in [(2, 3, 8, 8), (1, 3, 40, 23)]:
            x = torch.rand(shape, generator=g)
            features = net(x)
            assert features.shape == (len(x), 2048) and torch.isfinite(features).all()
            assert (features >= 0).all()  # an average of ReLU outputs
        # the network resizes to 299 itself (bilinear, as pytorch-fid): same as resizing first
        x = torch.rand(1, 3, 32, 32, generator=g)
        resized = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        torch.testing.assert_close(net(x), net(resized), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3, H, W"):
        net(torch.rand(1, 1, 8, 8))


def test_grey_images_in_data_units_are_mapped_to_rgb_in_unit_range(tmp_path):
    save_file(generated_state_dict(seed=2), tmp_path / "w.safetensors")
    grey = DataInfo("g", (1, 8, 8), "image", levels=17, value_range=(0.0, 16.0))
    space = network_space("inception_v3", tmp_path / "w.safetensors", grey)
    x = torch.randint(0, 17, (3, 1, 8, 8)).float()
    net = space.extractor.net
    with torch.no_grad():
        torch.testing.assert_close(space.extractor(x), net((x / 16).expand(-1, 3, -1, -1)))
    assert space.identity.startswith("inception_v3 weights sha256:")


def test_tensorflow_average_pool_leaves_padding_out():
    """TF's SAME average pool averages the pixels inside the image only: ones stay ones
    (a zero-padded average would give 4/9 in the corners)."""
    out = _tf_avg_pool(torch.ones(1, 2, 5, 5))
    np.testing.assert_allclose(out.numpy(), 1.0)
