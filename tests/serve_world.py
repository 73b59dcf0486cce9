"""The index the server tests serve: a tiny model and a mixed folder of every kind of file, a symlink to a file
outside the folder, and a file added from elsewhere (neither of which the server may hand out)."""

from __future__ import annotations

from pathlib import Path

import torch

import openbind
from openbind.search import build_index
from openbind.weights.checkpoint import save_checkpoint
from media import write_audio, write_depth, write_image, write_imu_csv, write_mp4


def build_world(base: Path) -> Path:
    """`base`/model (imagebind_tiny, seed 0), `base`/data indexed into `base`/index; returns `base`."""
    torch.manual_seed(0)
    model = openbind.create_model("imagebind_tiny")
    save_checkpoint(model.state_dict(), model.config, base / "model")
    data = base / "data"
    write_image(data / "red.jpg", color=(220, 20, 20))
    write_image(data / "blue.png", color=(20, 20, 220))
    write_audio(data / "bark.wav", freq=300)
    write_audio(data / "engine.flac", freq=90)
    write_mp4(data / "clip.mp4", sound=True)
    (data / "dog.txt").write_text("a dog barking in a park")
    write_depth(data / "room_depth.png", 1500)
    write_imu_csv(data / "walk.csv")
    outside = write_image(base / "private" / "secret.png", seed=3)
    (data / "link.png").symlink_to(outside)
    index, report = build_index(data, base / "model", base / "index", globs={"depth": ["*_depth.png"], "imu": ["*.csv"]},
                                progress=False)  # fmt: skip
    assert not report.failed, report.failed
    index.add([write_image(base / "elsewhere" / "added.png", seed=4)])
    index.close()
    return base
