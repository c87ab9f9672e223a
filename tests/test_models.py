"""Tests of vrnkit.models: shapes, exact MAC counts, gradients, checkpoints and their errors.

Paper and colab presets are only built on the "meta" device (shapes, no compute); real forward
passes run at the small "cpu" preset so the whole file takes seconds on 2 CPU cores.
"""
from __future__ import annotations

import math
import os
from dataclasses import replace

import pytest
import torch
from torch import nn

from vrnkit.config import VolumeSpec
from vrnkit.checkpoint import CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from vrnkit.models import KINDS, MODEL_PRESETS, ModelConfig, Residual, build_model, count_parameters
from vrnkit.modelsize import count_macs, model_summary, summary_table

CPU = {kind: ModelConfig.preset("cpu", kind=kind) for kind in KINDS}


def rand_image(config: ModelConfig, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, config.image_size, config.image_size, generator=g)


def expected_shapes(config: ModelConfig, batch: int) -> tuple[tuple, tuple]:
    s = config.image_size
    return (batch, config.depth, s, s), (batch, config.num_landmarks, s // 4, s // 4)


def check_output(out: dict, config: ModelConfig, batch: int) -> None:
    if config.kind == "direct":
        assert set(out) == {"vertices"} and tuple(out["vertices"].shape) == (batch, config.num_vertices, 3)
        return
    volume_shape, heatmap_shape = expected_shapes(config, batch)
    assert tuple(out["volume"].shape) == volume_shape
    if config.kind == "vrn":
        assert "heatmaps" not in out
        return
    stacks = 1 if config.kind == "multitask" else config.landmark_stacks
    assert isinstance(out["heatmaps"], list) and len(out["heatmaps"]) == stacks
    for h in out["heatmaps"]:
        assert tuple(h.shape) == heatmap_shape


# ---------------------------------------------------------------------------------------------
# Configs and presets


def test_presets_match_the_design():
    paper = ModelConfig.preset("paper")
    assert (paper.features, paper.image_size, paper.depth, paper.stacks) == (256, 192, 200, 2)
    colab = ModelConfig.preset("colab")
    assert (colab.image_size, colab.depth) == (192, 200)
    quick = VolumeSpec.preset("cpu")
    cpu = ModelConfig.preset("cpu")
    assert (cpu.depth, cpu.image_size, cpu.image_size) == quick.shape
    assert VolumeSpec.preset("paper").shape == (paper.depth, paper.image_size, paper.image_size)
    for kind in KINDS:
        assert ModelConfig.preset("cpu", kind=kind).kind == kind


@pytest.mark.parametrize("bad, word", [
    (dict(kind="unet"), "kind"),
    (dict(features=0), "features"),
    (dict(features=255), "even"),
    (dict(image_size=200), "multiple of"),
    (dict(stacks=0), "stacks"),
    (dict(depth=2.5), "depth"),
    (dict(hourglass_depth=True), "hourglass_depth"),
    (dict(heatmap_sigma=0), "heatmap_sigma"),
    (dict(heatmap_sigma="2"), "heatmap_sigma"),
    (dict(target="posed"), "target"),
])
def test_config_validation(bad, word):
    with pytest.raises(ValueError, match=word):
        ModelConfig(**bad)


def test_config_names_and_dicts():
    with pytest.raises(ValueError, match="cpu"):  # lists the valid presets
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="kind"):
        ModelConfig.preset("cpu", kind="vnet")
    with pytest.raises(ValueError, match="colour"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "colour": 1})
    d = CPU["guided"].to_dict()
    assert all(isinstance(v, (int, float, str)) for v in d.values())
    assert ModelConfig.from_dict(d) == CPU["guided"]


# ---------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("preset", ["paper", "colab"])
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_large_presets_on_meta(preset, kind):
    config = ModelConfig.preset(preset, kind=kind)
    with torch.device("meta"):
        model = build_model(config)
        image = torch.empty(2, 3, config.image_size, config.image_size)
        check_output(model(image), config, 2)
        if kind == "guided":
            _, heatmap_shape = expected_shapes(config, 2)
            check_output(model(image, torch.empty(heatmap_shape)), config, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_cpu_preset(kind):
    config = CPU[kind]
    model = build_model(config)
    out = model(rand_image(config, 3))
    check_output(out, config, 3)
    assert all(torch.isfinite(v).all() for v in out.values() if torch.is_tensor(v))


def test_guided_uses_given_heatmaps_and_detaches_its_own():
    torch.manual_seed(0)
    config = CPU["guided"]
    model = build_model(config).eval()
    image = rand_image(config)
    with torch.no_grad():
        own = model(image)
        # Passing the landmark network's own prediction must give the same volume as None.
        same = model(image, own["heatmaps"][-1])
        other = model(image, torch.rand_like(own["heatmaps"][-1]))
    torch.testing.assert_close(same["volume"], own["volume"])
    assert not torch.allclose(other["volume"], own["volume"])  # given heatmaps are used
    for a, b in zip(other["heatmaps"], own["heatmaps"]):  # heatmaps are always predicted
        torch.testing.assert_close(a, b)

    # Without given heatmaps, the volume loss must not reach the landmark network (detached).
    model.train()
    model(image)["volume"].sum().backward()
    assert all(p.grad is None for p in model.landmarks.parameters())
    assert all(p.grad is not None for p in model.vrn.parameters())


def test_direct_regression_starts_in_the_crop_and_learns_a_shift():
    """The direct model's vertices start near the crop's centre, and its output is what the loss
    sees: a few steps of L2 toward a fixed shape move every vertex toward it."""
    torch.manual_seed(0)
    config = CPU["direct"]
    model = build_model(config)
    image = rand_image(config, 2)
    start = model(image)["vertices"]
    centre = torch.tensor([config.image_size / 2, config.image_size / 2, config.depth / 4])
    assert (start - centre).abs().max() < 0.2 * config.image_size
    target = centre + torch.randn(config.num_vertices, 3) * 8
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(60):
        loss = ((model(image)["vertices"] - target) / config.image_size).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = (start - target).norm(dim=-1).mean()
    assert (model(image)["vertices"] - target).norm(dim=-1).mean() < 0.5 * before


def test_input_checks():
    model = build_model(CPU["guided"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="multiple of"):
        model(torch.rand(1, 3, 48, 48))
    with pytest.raises(ValueError, match="heatmaps"):
        model(torch.rand(2, 3, 64, 64), torch.rand(2, 68, 64, 64))  # must be H/4


# ---------------------------------------------------------------------------------------------
# Parameters and MACs, against hand-computed references


def test_macs_single_conv_and_linear():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    assert count_macs(conv, image_size=16) == 5 * 3 * 3 * 3 * 8 * 8  # Cout*Cin*kh*kw*Hout*Wout
    grouped = nn.Conv2d(4, 6, (3, 5), padding=(1, 2), groups=2)
    assert count_macs(grouped, image_size=10) == 6 * (4 // 2) * 3 * 5 * 10 * 10
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * 4 * 4, 7))
    assert count_macs(net, image_size=4) == 2 * 3 * 16 + 32 * 7
    with pytest.raises(ValueError, match="image_size"):
        count_macs(conv)


def test_residual_params_and_macs_by_hand():
    # Residual(8, 16): mid = 8. BN(8) x3 = 48; conv1x1 8->8 no bias 64; conv3x3 8->8 no bias 576;
    # conv1x1 8->16 + bias 144; skip conv1x1 8->16 + bias 144.
    block = Residual(8, 16)
    assert count_parameters(block) == 48 + 64 + 576 + 144 + 144
    hw = 12 * 12
    assert count_macs(block, image_size=12) == (8 * 8 + 8 * 8 * 9 + 8 * 16 + 8 * 16) * hw
    same = Residual(16, 16)  # identity skip: no skip conv
    assert count_macs(same, image_size=12) == (16 * 8 + 8 * 8 * 9 + 8 * 16) * hw


def reference_vrn_macs(c: ModelConfig, in_channels: int = 3) -> int:
    """VRN MACs written out from the architecture description, independently of the hooks."""

    def res(cin, cout, side):
        m = cout // 2
        return (cin * m + m * m * 9 + m * cout + (cin * cout if cin != cout else 0)) * side * side

    def hourglass(side, depth):
        f, r = c.features, c.residuals
        inner = hourglass(side // 2, depth - 1) if depth > 1 else r * res(f, f, side // 2)
        return r * res(f, f, side) + 2 * r * res(f, f, side // 2) + inner

    s = c.image_size
    stem = (64 * in_channels * 49 * (s // 2) ** 2 + res(64, 128, s // 2) + res(128, 128, s // 4)
            + res(128, c.features, s // 4))
    q = s // 4
    stack = hourglass(q, c.hourglass_depth) + res(c.features, c.features, q) + c.features**2 * q * q
    return stem + c.stacks * stack + c.features * c.depth * q * q


@pytest.mark.parametrize("preset", list(MODEL_PRESETS))
def test_vrn_macs_match_the_architecture(preset):
    config = ModelConfig.preset(preset)
    assert count_macs(config) == reference_vrn_macs(config)


def test_guided_macs_are_landmark_net_plus_71_channel_vrn():
    config = CPU["guided"]
    vrn71 = reference_vrn_macs(config, in_channels=3 + config.num_landmarks)
    landmark = count_macs(build_model(config).landmarks)  # has a .config, built on meta
    assert count_macs(config) == vrn71 + landmark


def test_count_macs_of_a_real_model_equals_its_config():
    model = build_model(CPU["multitask"])
    assert count_macs(model) == count_macs(CPU["multitask"])
    assert model.training  # count_macs restores the mode it found


def test_paper_preset_is_close_to_the_released_model():
    # The released VRN has about 19M parameters.
    with torch.device("meta"):
        params = count_parameters(build_model(ModelConfig.preset("paper")))
    assert abs(params - 19e6) / 19e6 < 0.10


def test_summary_rows():
    rows = summary_table()
    assert len(rows) == len(MODEL_PRESETS) * len(KINDS)
    row = model_summary(CPU["vrn"])
    assert row["params"] == count_parameters(build_model(CPU["vrn"]))
    assert math.isclose(row["GMACs"], reference_vrn_macs(CPU["vrn"]) / 1e9)
    assert row["checkpoint_MB"] < 25


# ---------------------------------------------------------------------------------------------
# Gradients, channels_last, autocast


@pytest.mark.parametrize("kind, give_heatmaps", [("vrn", False), ("multitask", False),
                                                 ("guided", False), ("guided", True)])
def test_gradients_reach_every_parameter(kind, give_heatmaps):
    torch.manual_seed(0)
    config = CPU[kind]
    model = build_model(config)
    image = rand_image(config)
    args = (torch.rand(expected_shapes(config, 2)[1]),) if give_heatmaps else ()
    out = model(image, *args)
    total = out["volume"].sum() + sum(h.sum() for h in out.get("heatmaps", []))
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    model = build_model(CPU["multitask"]).eval()
    image = rand_image(CPU["multitask"])
    with torch.no_grad():
        ref = model(image)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(image.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out["volume"], ref["volume"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["heatmaps"][0], ref["heatmaps"][0], rtol=1e-4, atol=1e-4)


def test_bfloat16_autocast():
    torch.manual_seed(0)
    model = build_model(CPU["guided"]).eval()
    image = rand_image(CPU["guided"])
    with torch.no_grad():
        ref = model(image)["volume"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(image)["volume"]
    assert out.dtype == torch.bfloat16
    # bf16 keeps ~3 significant digits: compare relative to the output's scale.
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < 0.1


# ---------------------------------------------------------------------------------------------
# Checkpoints


def trained_model(kind: str = "vrn") -> nn.Module:
    """A cpu-preset model whose BN running statistics are not the defaults."""
    torch.manual_seed(1)
    model = build_model(CPU[kind])
    with torch.no_grad():
        model(rand_image(CPU[kind], 4))  # one train-mode pass updates running_mean / var
    return model.eval()


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip(tmp_path, kind):
    model = trained_model(kind)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    main = "vertices" if kind == "direct" else "volume"  # the output the model is for
    out = model(rand_image(CPU[kind]))
    (out[main].mean() + sum(h.mean() for h in out.get("heatmaps", []))).backward()
    opt.step()
    model.eval()
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, CPU[kind], extra={"epoch": 3, "optimizer": opt.state_dict()})
    assert os.listdir(path.parent) == ["model.pt"]  # no temp file left behind

    loaded, config, extra = load_checkpoint(path, expect=CPU[kind])
    assert config == CPU[kind] and not loaded.training
    assert extra["epoch"] == 3
    state = extra["optimizer"]["state"][0]["square_avg"]
    torch.testing.assert_close(state, opt.state_dict()["state"][0]["square_avg"], rtol=0, atol=0)
    image = rand_image(CPU[kind])
    with torch.no_grad():
        a, b = model(image), loaded(image)
    assert torch.equal(a[main], b[main])
    # A freshly built model differs: the equality above is not vacuous.
    with torch.no_grad():
        assert not torch.equal(build_model(CPU[kind]).eval()(image)[main], a[main])


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "vrn.pt"
    save_checkpoint(path, trained_model("vrn"), CPU["vrn"])
    return path


def assert_helpful(excinfo, path, *words):
    message = str(excinfo.value)
    assert str(path) in message, message
    for w in words:
        assert w in message, message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(ValueError) as e:
        load_checkpoint(path)
    assert_helpful(e, path, "does not exist", "train")


def test_truncated_and_garbage_files(saved, tmp_path):
    data = saved.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as e:
        load_checkpoint(truncated)
    assert_helpful(e, truncated, "corrupt", "save or copy it again")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError) as e:
        load_checkpoint(garbage)
    assert_helpful(e, garbage, "corrupt")


def test_not_a_vrnkit_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}, "epoch": 1}, path)
    with pytest.raises(ValueError) as e:
        load_checkpoint(path)
    assert_helpful(e, path, "not a vrnkit model checkpoint", "save_checkpoint")
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a vrnkit"):
        load_checkpoint(path)


def rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)
    return payload


@pytest.mark.parametrize("version, fix", [(CHECKPOINT_VERSION + 1, "upgrade vrnkit"),
                                          (CHECKPOINT_VERSION - 1, "re-train or re-save")])
def test_format_version(saved, version, fix):
    rewrite(saved, format_version=version)
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved)
    assert_helpful(e, saved, f"version {version}", fix)


def test_expect_kind_preset_and_config(saved):
    load_checkpoint(saved, expect="vrn")
    load_checkpoint(saved, expect="cpu")
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved, expect="guided")
    assert_helpful(e, saved, "'vrn'", "guided")
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved, expect="paper")
    assert_helpful(e, saved, "features=64 (expected 256)", "image_size=64 (expected 192)")
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved, expect=replace(CPU["vrn"], depth=32))
    assert_helpful(e, saved, "depth=64 (expected 32)")
    with pytest.raises(ValueError, match="expect"):
        load_checkpoint(saved, expect="vrn-guided")


def test_state_dict_mismatch(saved):
    payload = torch.load(saved, weights_only=True)
    rewrite(saved, config={**payload["config"], "features": 32})
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved)
    assert_helpful(e, saved, "state_dict does not fit", "re-save")

    state = dict(payload["state_dict"])
    state.pop("head.conv.weight")
    rewrite(saved, config=payload["config"], state_dict=state)
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved)
    assert_helpful(e, saved, "head.conv.weight")


def test_invalid_stored_config(saved):
    rewrite(saved, config={"kind": "vrn", "features": -1})
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved)
    assert_helpful(e, saved, "invalid config", "features")


def test_save_refuses_what_cannot_be_loaded_back(tmp_path):
    import numpy as np

    model = build_model(CPU["vrn"])
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match="extra .*float\\(x\\)"):
        save_checkpoint(path, model, CPU["vrn"], extra={"nme": np.float64(0.06)})
    with pytest.raises(ValueError, match="model.config"):
        save_checkpoint(path, model, CPU["guided"])
    assert not path.exists() and os.listdir(tmp_path) == []


def test_save_unwraps_a_compiled_model(tmp_path):
    model = trained_model("vrn")
    wrapper = nn.Module()
    wrapper._orig_mod = model  # what torch.compile's OptimizedModule looks like
    assert next(iter(wrapper.state_dict())).startswith("_orig_mod.")
    path = save_checkpoint(tmp_path / "m.pt", wrapper, CPU["vrn"])
    loaded, _, _ = load_checkpoint(path)
    image = rand_image(CPU["vrn"])
    with torch.no_grad():
        assert torch.equal(loaded(image)["volume"], model(image)["volume"])


def test_volume_is_the_head_upsampled_bilinearly_about_pixel_centres():
    # Head output at 1/4 resolution = a ramp in x (value = column index). Bilinear x4 about pixel
    # centres (align_corners=False) maps output pixel X to source (X + 0.5) / 4 - 0.5, clamped at
    # the borders; a linear ramp interpolates to exactly that coordinate.
    config = CPU["vrn"]
    q = config.image_size // 4

    class Ramp(nn.Module):
        def forward(self, x):
            ramp = torch.arange(q, dtype=torch.float32).expand(x.shape[0], config.depth, q, q)
            return ramp + 0 * x[:, :1]  # keep the dependence on x (shape and device)

    model = build_model(config).eval()
    model.head = Ramp()
    with torch.no_grad():
        volume = model(rand_image(config))["volume"]
    X = torch.arange(config.image_size, dtype=torch.float32)
    expected = ((X + 0.5) / 4 - 0.5).clamp(0, q - 1)
    torch.testing.assert_close(volume[1, 5, 7], expected)
    torch.testing.assert_close(volume[0, -1, -1], expected)


class Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_each_stack_adds_its_output_to_its_input():
    # With every stack replaced by zeros, x + stack(x) = x: the heads see the stem's features.
    torch.manual_seed(0)
    vrn = build_model(CPU["vrn"]).eval()
    vrn.stacks = nn.ModuleList(Zero() for _ in vrn.stacks)
    multi = build_model(CPU["multitask"]).eval()
    multi.shared = multi.landmark_branch = multi.volume_branch = Zero()
    image = rand_image(CPU["vrn"])
    with torch.no_grad():
        x = vrn.stem(image)
        expected = nn.functional.interpolate(vrn.head(x), scale_factor=4, mode="bilinear")
        torch.testing.assert_close(vrn(image)["volume"], expected)
        x = multi.stem(image)
        out = multi(image)
        torch.testing.assert_close(out["heatmaps"][0], multi.landmark_head(x))
        expected = nn.functional.interpolate(multi.volume_head(x), scale_factor=4, mode="bilinear")
        torch.testing.assert_close(out["volume"], expected)


def test_half_checkpoint_is_half_the_size_and_loads_as_float32(tmp_path):
    """Shipped weights are stored in float16; they load into float32 networks within fp16 rounding."""
    model = trained_model("vrn")
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(full, model, CPU["vrn"])
    save_checkpoint(half, model, CPU["vrn"], half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _, _ = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=k)
