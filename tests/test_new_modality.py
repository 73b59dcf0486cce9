"""A seventh modality from a package of its own: registered, found by the CLI through an entry point, bound to
the image tower, embedded and evaluated, with no file of openbind touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import openbind
from openbind.data.manifest import read_manifest
from openbind.eval import evaluate_manifest
from openbind.modalities import get_input, modality_of, unregister_modality
from openbind.train import TrainConfig, Trainer
from openbind.world import write_world

VALUES = 16

# A "glyph" sensor: 16 readings per .npy file, 4 per token through a linear stem.
TOY_PACKAGE = f'''
"""A toy modality for openbind: {VALUES} sensor readings per .npy file."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from openbind.errors import OpenBindInputError
from openbind.modalities import InputKind, Modality, register_modality
from openbind.modalities.batch import as_item_list, map_items
from openbind.model.config import EncoderConfig
from openbind.model.stem import ClsPosStem


@dataclass
class GlyphConfig(EncoderConfig):
    width: int = 32
    depth: int = 1
    heads: int = 2
    scale: float = 10.0  # 1 / temperature of the bind loss
    values: int = {VALUES}
    chunk: int = 4

    modality = "glyph"
    item_ndims = (1,)

    def num_tokens(self):
        return 1 + self.values // self.chunk

    def build_stem(self):
        return GlyphStem(self)

    def stem_macs(self):
        return (self.num_tokens() - 1) * self.width * self.chunk

    def example_input(self, batch, device="cpu"):
        return torch.randn(batch, self.values, device=device)


class GlyphStem(ClsPosStem):
    def __init__(self, config):
        super().__init__(config.width, config.values // config.chunk)
        self.chunk = config.chunk
        self.proj = nn.Linear(config.chunk, config.width)

    def forward(self, x):
        return self.add_cls_and_positions(self.proj(x.reshape(x.shape[0], -1, self.chunk)))


@dataclass(frozen=True)
class GlyphTransform:
    values: int = {VALUES}

    def __post_init__(self):
        if self.values < 1:
            raise ValueError(f"values must be positive, got {{self.values}}")

    def __call__(self, item):
        try:
            array = np.load(item, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise OpenBindInputError(item, f"not a .npy array ({{error}})") from None
        if array.shape != (self.values,):
            raise OpenBindInputError(item, f"expected {{self.values}} readings, got shape {{array.shape}}")
        return torch.from_numpy(array.astype(np.float32))


def load_glyphs(items, *, on_error="raise", **options):
    return map_items(GlyphTransform(**options), as_item_list(items, (str,)), on_error)


register_modality(Modality("glyph", GlyphConfig, inputs=(InputKind("glyph", GlyphTransform, load_glyphs),)))
'''


@pytest.fixture(scope="module")
def toy_package(tmp_path_factory):
    """The package on a path of its own, with an entry point naming it (as `pip install` would leave it)."""
    root = tmp_path_factory.mktemp("site")
    (root / "toy_glyph").mkdir()
    (root / "toy_glyph" / "__init__.py").write_text(textwrap.dedent(TOY_PACKAGE))
    info = root / "toy_glyph-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-glyph\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[openbind.modalities]\nglyph = toy_glyph\n")
    sys.path.insert(0, str(root))
    import toy_glyph  # noqa: F401  (registers "glyph")

    yield root
    unregister_modality("glyph")
    sys.path.remove(str(root))
    sys.modules.pop("toy_glyph", None)


@pytest.fixture(scope="module")
def glyph_data(toy_package, tmp_path_factory):
    """(image, glyph) pairs on the world's images: a glyph is its image's object as a one-hot code plus noise."""
    world = write_world(
        tmp_path_factory.mktemp("w") / "world", seed=0, train_per_class=3, test_per_class=1, align_per_combo=1,
        videos_train_per_activity=1, videos_test_per_activity=1, arithmetic_per_combo=1,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    files = {}
    for split, manifest in (("train", "align_train"), ("test", "eval_image_test")):
        rows = [row for row in read_manifest(world.manifests[manifest]).rows if row.get("object")]
        lines = ["image,glyph,label"]
        for i, row in enumerate(rows):
            code = np.zeros(VALUES, np.float32)
            code[world.objects.index(row["object"])] = 3.0
            path = world.out_dir / "glyph" / f"{split}_{i:04d}.npy"
            path.parent.mkdir(exist_ok=True)
            np.save(path, code + rng.normal(0, 0.3, VALUES).astype(np.float32))
            lines.append(f"{row['image']},{path},{row['object']}")
        files[split] = world.out_dir / f"glyph_{split}.csv"
        files[split].write_text("\n".join(lines) + "\n")
    files["classes"] = world.out_dir / "classes" / "objects.txt"
    files["align"] = world.manifests["align_train"]
    return files


@pytest.fixture(scope="module")
def aligned(glyph_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "align"
    Trainer(TrainConfig(
        stage="align", train=[str(glyph_data["align"])], out=str(out), model="imagebind_tiny", epochs=3,
        batch_size=16, lr=2e-3, warmup_epochs=0.5, progress=False, preload=True,
    )).fit()  # fmt: skip
    return out


def test_the_registry_serves_the_new_modality_everywhere(glyph_data):
    assert modality_of("glyph").name == "glyph" and get_input("glyph").holds_files
    manifest = read_manifest(glyph_data["test"])
    assert manifest.modalities == ["image", "glyph"] and manifest.metadata == ["label"]
    batch = openbind.preprocess.glyph([row["glyph"] for row in manifest.rows])
    assert batch.shape == (len(manifest), VALUES)
    bad = openbind.preprocess.load("glyph", [str(glyph_data["classes"]), manifest.rows[0]["glyph"]], on_error="skip")
    assert bad.kept == [1] and "not a .npy array" in bad.failed[0].reason
    with pytest.raises(ValueError, match="values must be positive"):
        openbind.preprocess.transform_for("glyph", values=0)


def test_bind_and_evaluate_through_the_api(glyph_data, aligned, tmp_path):
    run = tmp_path / "glyph"
    trainer = Trainer(TrainConfig(
        stage="bind", modality="glyph", train=[str(glyph_data["train"])], out=str(run), init=str(aligned),
        epochs=8, batch_size=16, lr=2e-3, warmup_epochs=0.5, progress=False, log_every=1,
    ))  # fmt: skip
    model_dir = trainer.fit()
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]  # the new tower learned to match its images
    model = openbind.create_model(str(run))
    assert model.modalities == ["vision", "text", "audio", "depth", "thermal", "imu", "glyph"]
    recorded = openbind.get_model_config(str(model_dir))
    assert recorded.encoders["glyph"].values == VALUES
    assert recorded.inputs["glyph"] == {"values": VALUES} and recorded.inputs["audio"]["sample_rate"] == 16000
    manifest = read_manifest(glyph_data["test"])
    embeddings = model.embed(glyph=[row["glyph"] for row in manifest.rows], image=[row["image"] for row in manifest.rows])
    assert embeddings["glyph"].shape == embeddings["image"].shape
    assert torch.allclose(embeddings["glyph"].norm(dim=-1), torch.ones(len(manifest)))
    classes = glyph_data["classes"].read_text().splitlines()
    result = evaluate_manifest(model, manifest, "glyph", classes, progress=False)
    assert result.num_items == len(manifest) and len(result.classnames) == len(classes)


def test_bind_and_evaluate_through_the_cli(toy_package, glyph_data, aligned, tmp_path):
    """A fresh process knows nothing of the toy package until the entry point names it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_package), os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "glyph_cli"
    train = [sys.executable, "-m", "openbind.cli", "train", "bind", "--modality", "glyph", "--train",
             str(glyph_data["train"]), "--init", str(aligned), "--out", str(run), "--epochs", "2", "--batch-size", "16",
             "--no-progress"]  # fmt: skip
    done = subprocess.run(train, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "zs.json"
    evaluate = [sys.executable, "-m", "openbind.cli", "eval", "zeroshot", "--model", str(run), "--modality", "glyph",
                "--data", str(glyph_data["test"]), "--classes", str(glyph_data["classes"]), "--json", str(out)]  # fmt: skip
    done = subprocess.run(evaluate, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "glyph zero-shot on" in done.stdout
    assert json.loads(out.read_text())["num_items"] == len(read_manifest(glyph_data["test"]))
