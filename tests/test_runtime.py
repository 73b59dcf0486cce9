"""CPU runtimes: int8 precision, ONNX export checked against torch, and the onnxruntime-backed model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from openbind import OpenBindInputError, create_model, tokenize  # noqa: E402
from openbind.cli import main  # noqa: E402
from openbind.eval.embedding import embed_items  # noqa: E402
from openbind.runtime import OnnxModel, export_onnx, is_onnx_export  # noqa: E402
from openbind.runtime import int8, onnx_export  # noqa: E402

SEED = 0


def tiny(modalities=None, precision="fp32"):
    torch.manual_seed(SEED)  # the same random weights for every precision
    return create_model("imagebind_tiny", modalities=modalities, precision=precision, progress=False)


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny()
    out = tmp_path_factory.mktemp("onnx") / "tiny"
    towers = export_onnx(model, out)
    return model, out, towers


def test_int8_keeps_each_tower_close_to_fp32():
    fp32, int8 = tiny(), tiny(precision="int8")
    with torch.inference_mode():
        for modality, encoder in fp32.encoders.items():
            x = encoder.config.example_input(4)
            reference, quantized = fp32.encode(modality, x), int8.encode(modality, x)
            assert quantized.shape == reference.shape
            # tiny towers (width 48-96) lose more to int8 than the huge ones in docs/benchmarks.md
            assert cosines(quantized, reference).min() > 0.99, modality
            assert not torch.equal(quantized, reference), modality  # really quantized
    trunk_linear = int8.encoders["imu"].trunk.blocks[0].mlp.fc1
    assert isinstance(trunk_linear, DynamicLinear)
    assert type(int8.encoders["imu"].stem.proj) is nn.Linear  # stems and heads stay fp32
    assert type(int8.encoders["imu"].head.proj) is nn.Linear


def test_int8_activations_use_8_bits_where_vnni_allows(monkeypatch):
    vnni_here = int8.full_range_activations()
    for vnni in (True, False):
        monkeypatch.setattr(int8, "full_range_activations", lambda: vnni)
        fc1 = tiny(["depth"], precision="int8").encoders["depth"].trunk.blocks[0].mlp.fc1
        assert (type(fc1) is int8.FullRangeLinear) == vnni and isinstance(fc1, DynamicLinear)
    if not vnni_here:
        pytest.skip("no AVX-512 VNNI here: 8-bit activations could saturate the 16-bit sums")
    # Inputs that saturate pre-VNNI kernels: every other activation at the batch's maximum (255), weights +-127.
    torch.manual_seed(SEED)
    linear = nn.Linear(512, 256)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(256, 512).sign() * 0.05)
    x = torch.randn(16, 512)
    x[:, ::2] = 3.0
    with torch.inference_mode():
        expected = linear(x)
        errors = {}
        for module in (int8.FullRangeLinear, DynamicLinear):
            quantized = torch.ao.quantization.quantize_dynamic(
                nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8, mapping={nn.Linear: module}
            )[0]
            assert type(quantized) is module
            errors[module] = (quantized(x) - expected).abs()
    full, seven_bits = errors[int8.FullRangeLinear], errors[DynamicLinear]
    assert full.max() <= seven_bits.max() and full.mean() < seven_bits.mean(), (full, seven_bits)  # no saturation


@pytest.mark.slow
def test_export_writes_and_checks_every_tower(exported):
    model, out, towers = exported
    record = json.loads((out / "onnx.json").read_text())
    assert is_onnx_export(out) and record["precision"] == "fp32"
    assert record["towers"] == towers  # the checked cosines are on disk too
    assert list(towers) == model.modalities == list(record["towers"])
    for modality, tower in towers.items():
        assert (out / tower["file"]).is_file()
        assert tower["cosine_fp32"] >= 0.9999, modality
        scale = model.encoders[modality].scale
        assert tower["scale"] == (None if scale is None else pytest.approx(float(scale.detach())))
    assert json.loads((out / "config.json").read_text()) == model.config.to_dict()
    assert not list(out.parent.glob(".*partial*"))


def test_onnx_model_embeds_like_torch(exported):
    model, out, _ = exported
    onnx = create_model(str(out))
    assert isinstance(onnx, OnnxModel) and onnx.modalities == model.modalities and onnx.precision == "fp32"
    tokens = tokenize(["a dog barking on a beach at night", "x"])
    torch.manual_seed(1)
    inputs = {
        "text": tokens,  # trimmed to the batch's last end-of-text: the length axis is dynamic
        "vision": torch.randn(1, 3, 224, 224),  # batch 1, an image through the clip-shaped graph
        "video": torch.randn(2, 2, 3, 2, 224, 224),  # 2 videos of 2 clips: averaged in Python
        "audio": model.config.encoders["audio"].example_input(2),
        "imu": model.config.encoders["imu"].example_input(3),
    }
    with torch.inference_mode():
        expected = model.embed(inputs)
    got = onnx.embed(inputs)
    for kind, embedding in expected.items():
        assert got[kind].shape == embedding.shape and got[kind].dtype == torch.float32
        assert cosines(got[kind], embedding).min() > 0.9999, kind
        assert torch.allclose(got[kind].norm(dim=-1), torch.ones(len(embedding)), atol=1e-5)
    short = tokens[1:, :1]  # one token: padded to the graph's shortest length
    assert cosines(onnx.encode("text", short), model.encode("text", short)).min() > 0.9999
    assert onnx.logit_scale("audio") == pytest.approx(model.logit_scale("audio"))


def test_onnx_model_works_where_the_torch_model_does(exported):
    model, out, _ = exported
    onnx = create_model(str(out), modalities=["depth"])
    assert onnx.modalities == ["depth"]
    maps = [np.random.default_rng(i).random((240, 320), dtype=np.float32) * 5 for i in range(3)]
    result = embed_items(onnx, "depth", maps + ["not a depth map"], batch_size=2, progress=False)
    with torch.inference_mode():
        expected = embed_items(model, "depth", maps, batch_size=2, progress=False, on_error="raise")
    assert result.kept == [0, 1, 2] and len(result.failed) == 1
    assert cosines(result.tensor, expected).min() > 0.9999
    assert onnx.embed(depth=None) == {}
    with pytest.raises(KeyError, match="no 'text' encoder"):
        onnx.encode("text", tokenize(["a"]))
    with pytest.raises(OpenBindInputError, match="does not fit the exported graph"):
        onnx.encode("depth", torch.randn(2, 1, 100, 100))
    with pytest.raises(OpenBindInputError, match="depth input must be"):
        onnx.encode("depth", torch.randn(224, 224))
    assert onnx.encode("depth", torch.empty(0, 1, 224, 224)).shape == (0, model.config.embed_dim)
    assert onnx.eval() is onnx and onnx.train(False) is onnx
    with pytest.raises(ValueError, match="inference only"):
        onnx.train()


def test_export_of_a_broken_tower_fails_and_leaves_nothing(tmp_path, monkeypatch):
    model = tiny(["depth"])
    monkeypatch.setattr(onnx_export._Tower, "forward", lambda self, x: self.encoder.embed_trimmed(x).roll(1, dims=-1))
    with pytest.raises(onnx_export.ExportCheckError, match="depth graph's embeddings have cosine"):
        export_onnx(model, tmp_path / "broken")
    assert list(tmp_path.iterdir()) == []


def test_int8_export_records_its_cosines(tmp_path):
    model = tiny(["thermal"])
    towers = export_onnx(model, tmp_path / "int8", int8=True)
    onnx = create_model(str(tmp_path / "int8"))
    assert onnx.precision == "int8"
    assert towers["thermal"]["cosine_fp32"] >= 0.9999 and 0.99 < towers["thermal"]["cosine_int8"] < 1
    graph = __import__("onnx").load(str(tmp_path / "int8" / "thermal.onnx"), load_external_data=False).graph
    assert any(node.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for node in graph.node)
    x = model.config.encoders["thermal"].example_input(3)
    with torch.inference_mode():
        assert cosines(onnx.encode("thermal", x), model.encode("thermal", x)).min() > 0.99


def test_cli_export_onnx(tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", "onnx", "--model", "imagebind_tiny", "--out", str(out), "--modality", "imu"]) == 0
    printed = capsys.readouterr().out
    assert "imu" in printed and "imu.onnx" in printed and f"written to {out}" in printed
    assert create_model(str(out)).modalities == ["imu"]
    assert main(["export", "onnx", "--model", "imagebind_tiny", "--out", str(out)]) == 2  # not empty
    assert "not an empty directory" in capsys.readouterr().err


def test_bad_options(exported, tmp_path):
    model, out, _ = exported
    with pytest.raises(ValueError, match="precision must be one of"):
        create_model("imagebind_tiny", precision="int4")
    with pytest.raises(ValueError, match="runtime must be one of"):
        create_model("imagebind_tiny", runtime="tensorrt")
    with pytest.raises(ValueError, match="takes an ONNX export directory"):
        create_model("imagebind_tiny", runtime="onnx")
    with pytest.raises(ValueError, match="int8' runs on the CPU"):
        create_model("imagebind_tiny", precision="int8", device="meta")
    with pytest.raises(ValueError, match="pretrained, compile, precision and device do not apply"):
        create_model(str(out), precision="bf16")
    with pytest.raises(ValueError, match="is an ONNX export"):
        create_model(str(out), runtime="torch")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        OnnxModel(out, threads=0)
    with pytest.raises(ValueError, match="is not an ONNX export"):
        OnnxModel(tmp_path)
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    record = json.loads((out / "onnx.json").read_text())
    del record["towers"]["vision"]
    (tmp_path / "onnx.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="no exported graph for \\['vision'\\]"):
        OnnxModel(tmp_path)
    with pytest.raises(ValueError, match="export an fp32 model"):
        export_onnx(tiny(["imu"], precision="bf16"), tmp_path / "bf16")
    with pytest.raises(ValueError, match="export the fp32 model"):
        export_onnx(tiny(["imu"], precision="int8"), tmp_path / "int8")
    with pytest.raises(ValueError, match="takes an openbind ImageBind model"):
        export_onnx(create_model(str(out)), tmp_path / "again")


def test_an_index_is_queried_through_an_export_of_its_model_and_in_int8(tmp_path, capsys):
    pytest.importorskip("faiss")
    from openbind.search import Index, build_index
    from openbind.weights.checkpoint import save_checkpoint

    model = tiny(["text"])
    save_checkpoint(model.state_dict(), model.config, tmp_path / "model")
    notes = tmp_path / "notes"
    notes.mkdir()
    for i, text in enumerate(["a dog barking", "rain on a roof", "a red car", "waves on a beach", "a kettle"]):
        (notes / f"{i}.txt").write_text(text)
    build_index(notes, tmp_path / "model", tmp_path / "index", progress=False)[0].close()
    export = tmp_path / "export"
    assert main(["export", "onnx", "--model", str(tmp_path / "model"), "--out", str(export)]) == 0
    query = [("text", "a barking dog", 1.0)]
    with Index.open(tmp_path / "index") as index:
        expected = [(r.id, r.score) for r in index.search(query, k=5)]
    for options in ({"model": export}, {"model": export, "runtime": "onnx"}, {"precision": "int8"}):
        with Index.open(tmp_path / "index", **options) as index:
            found = index.search(query, k=5)
            assert type(index.model_for({"text"})).__name__ == ("OnnxModel" if "model" in options else "ImageBind")
            assert found[0].id == expected[0][0]
            assert np.allclose([r.score for r in found], [s for _, s in expected], atol=0.02 if options.get(
                "precision") else 1e-4)  # fmt: skip
    other = tmp_path / "other"
    export_onnx(tiny(["text"]), other)  # the same weights, but no record of where they came from
    with pytest.raises(ValueError, match="not comparable"):
        Index.open(tmp_path / "index", model=other)
