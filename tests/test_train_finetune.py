"""What trains: freezing, last-N blocks, LoRA (init, trainables, merge, export), optimizer groups and schedule."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import openbind
from openbind.train import (
    PAPER_RECIPES,
    LoRALinear,
    apply_lora,
    build_optimizer,
    contrastive_loss,
    freeze,
    lora_state_dict,
    merge_lora,
    unfreeze_last_blocks,
    warmup_cosine,
)


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    return openbind.create_model("imagebind_tiny", modalities=["vision", "text", "audio"]).state_dict()


@pytest.fixture
def model(tiny_state):
    model = openbind.create_model("imagebind_tiny", modalities=["vision", "text", "audio"])
    model.load_state_dict(tiny_state)
    return model


def audio_batch(seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 128, 204, generator=torch.Generator().manual_seed(seed))


def trainable(module: nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if p.requires_grad]


def test_freeze_stops_every_gradient(model):
    assert freeze(model.encoders["vision"]) is model.encoders["vision"]
    assert not any(p.requires_grad for p in model.encoders["vision"].parameters())
    assert trainable(model.encoders["audio"])  # other towers untouched


def test_unfreeze_last_blocks_trains_only_those_blocks_and_the_head(model):
    audio = model.encoders["audio"]
    names = unfreeze_last_blocks(audio, 1)
    assert names == trainable(audio)
    assert {n.split(".")[0] for n in names} == {"trunk", "head"}
    assert all(n.startswith(("trunk.blocks.1.", "head.")) for n in names)
    assert "trunk.blocks.1.attn.bias_k" in names and "head.proj.weight" in names
    assert unfreeze_last_blocks(audio, 0) == ["head.norm.weight", "head.norm.bias", "head.proj.weight"]
    assert len(unfreeze_last_blocks(audio, 2)) == len(names) + len([n for n in names if n.startswith("trunk")])
    with pytest.raises(ValueError, match="blocks"):
        unfreeze_last_blocks(audio, 3)


def test_lora_starts_as_the_identity_and_trains_only_adapters(model):
    audio = model.encoders["audio"]
    x = audio_batch()
    before = audio(x)
    base_qkv = audio.trunk.blocks[0].attn.qkv.weight
    wrapped = apply_lora(audio, rank=4, alpha=8)
    targets = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    assert wrapped == [f"trunk.blocks.{i}.{t}" for i in range(2) for t in targets]
    layer = audio.trunk.blocks[0].attn.qkv
    assert isinstance(layer, LoRALinear) and layer.weight is base_qkv  # adopted, not copied
    assert layer.lora_A.shape == (4, 64) and layer.lora_B.shape == (192, 4) and layer.scaling == 2.0
    assert torch.equal(audio(x), before)
    names = trainable(audio)
    assert len(names) == 16 and all(n.endswith((".lora_A", ".lora_B")) for n in names)
    assert set(lora_state_dict(audio)) == set(names)

    # one step moves the output through the adapters only
    frozen = {k: v.clone() for k, v in audio.state_dict().items() if "lora_" not in k}
    optimizer = torch.optim.SGD([p for p in audio.parameters() if p.requires_grad], lr=0.5)
    target = nn.functional.normalize(torch.randn(3, 64, generator=torch.Generator().manual_seed(1)), dim=-1)
    contrastive_loss(target, audio(x), 20.0).backward()
    optimizer.step()
    assert not torch.allclose(audio(x), before, atol=1e-4)
    assert all(torch.equal(v, audio.state_dict()[k]) for k, v in frozen.items())


def test_merge_gives_the_adapted_outputs_and_plain_keys_that_load_into_a_plain_model(model, tiny_state):
    audio = model.encoders["audio"]
    x = audio_batch(2)
    original = audio(x)
    apply_lora(audio, rank=4, alpha=8, targets=("attn.qkv", "mlp.fc2"))
    with torch.no_grad():  # a trained-looking update (B is zero at init)
        for module in audio.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_(std=0.05)
    adapted = audio(x)
    assert not torch.allclose(adapted, original, atol=1e-3)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(audio(x), adapted, atol=1e-5, rtol=1e-5)
    state = model.state_dict()
    assert list(state) == list(tiny_state)
    plain = openbind.create_model("imagebind_tiny", modalities=["vision", "text", "audio"])
    plain.load_state_dict(state)  # strict
    torch.testing.assert_close(plain.encoders["audio"](x), adapted, atol=1e-5, rtol=1e-5)


def test_lora_with_dropout_and_no_bias_and_bad_targets():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(4, 6)
    before = net(x)
    assert apply_lora(net, rank=2, targets=("0",), dropout=0.5) == ["0"]
    net.train()
    torch.testing.assert_close(net(x), before)  # B = 0: dropout inside the adapter changes nothing yet
    assert trainable(net) == ["0.lora_A", "0.lora_B"]
    assert apply_lora(net, targets=("2",)) == ["2"]
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_lora(net, targets=("attn.qkv",))  # everything already wrapped or absent
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0)
    merge_lora(net)
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Linear] and net[0].bias is None


def test_optimizer_decays_only_matrices_and_skips_frozen(model):
    freeze(model.encoders["vision"])
    freeze(model.encoders["text"])
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = ([names[id(p)] for p in g["params"]] for g in optimizer.param_groups)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.2, 0.0]
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)
    assert all(n.startswith("encoders.audio.") for n in decay + no_decay)
    assert len(decay) + len(no_decay) == len(list(model.encoders["audio"].parameters()))
    decayed = {"stem.proj.weight", "head.proj.weight", "trunk.blocks.0.attn.qkv.weight",
               "trunk.blocks.1.mlp.fc2.weight"}  # fmt: skip
    not_decayed = {"stem.cls_token", "stem.pos_embed", "stem.norm.weight", "trunk.blocks.0.attn.bias_k",
                   "trunk.blocks.0.attn.bias_v", "trunk.blocks.0.attn.qkv.bias"}  # fmt: skip
    assert {f"encoders.audio.{n}" for n in decayed} <= set(decay)
    assert {f"encoders.audio.{n}" for n in not_decayed} <= set(no_decay)
    assert all(p.ndim >= 2 for n, p in model.named_parameters() if n in decay)
    text_scale = build_optimizer(model.encoders["text"].requires_grad_(True), 1e-3, 0.1).param_groups[1]["params"]
    assert any(p is model.encoders["text"].log_scale for p in text_scale)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(freeze(model), 1e-3, 0.1)


def test_warmup_cosine_values_and_plain_state():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    cosine = [2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 8))) for k in range(9)]
    assert lrs[4:13] == pytest.approx(cosine)
    assert lrs[12] == pytest.approx(0.2) and lrs[13] == pytest.approx(0.2)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["last_epoch"] == 14
    for bad in [(5, 4, 0.0), (-1, 4, 0.0), (0, 0, 0.0), (1, 4, 1.5)]:
        with pytest.raises(ValueError):
            warmup_cosine(optimizer, *bad)


def test_paper_recipes_match_the_model_constants():
    huge = openbind.get_model_config("imagebind_huge")
    assert set(PAPER_RECIPES) == {"audio", "depth", "thermal", "imu"}
    for modality, recipe in PAPER_RECIPES.items():
        encoder = huge.encoders[modality]
        assert recipe["temperature"] == pytest.approx(1 / encoder.scale)
        assert recipe["drop_path"] == encoder.drop_path
        assert recipe["warmup_epochs"] == 2 and recipe["betas"] == (0.9, 0.95)
    assert PAPER_RECIPES["audio"]["batch_size"] == 2048 and PAPER_RECIPES["imu"]["epochs"] == 8
    assert (PAPER_RECIPES["thermal"]["lr"], PAPER_RECIPES["thermal"]["grad_clip"]) == (5e-4, 5.0)
