"""Shared utilities: atomic outputs, image conversions and grids, progress formatting, configs."""

import json
import os

import numpy as np
import pytest

from tfstylegan.config import PRESET_NAMES, GeneratorConfig, Preset, TrainConfig, get_preset
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import image_grid, to_uint8, to_uint16, upscale_for_viewing
from tfstylegan.utils.io import atomic_dir, atomic_open, atomic_path, write_json
from tfstylegan.utils.progress import Progress, format_duration


def test_atomic_dir_leaves_nothing_on_failure_and_renames_on_success(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("partial")
            raise RuntimeError("crash")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (target / "done.txt").read_text() == "ok"
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_dir(target):
            pass
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_replacing_a_file_leaves_no_debris(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file where the folder goes")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (target / "new.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the replaced file is not left as .out.*.old


def test_atomic_file_writes_keep_the_old_version_on_failure(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    with pytest.raises(ValueError):
        write_json(path, {"x": float("nan")})  # NaN is not JSON: refused, old file kept
    assert json.loads(path.read_text()) == {"x": 1}
    with pytest.raises(KeyError):
        with atomic_open(path, "w") as f:
            f.write("garbage")
            raise KeyError("boom")
    assert json.loads(path.read_text()) == {"x": 1}
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_image_conversions_follow_the_official_rounding():
    img = np.array([-1.0, -0.5, 0.0, 0.99, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(to_uint8(img), [0, 64, 128, 254, 255, 255])
    np.testing.assert_array_equal(to_uint16(np.array([-1.0, 0.0, 1.0])), [0, 32768, 65535])


def test_image_grid_and_upscale():
    tiles = np.arange(5 * 2 * 2 * 1).reshape(5, 2, 2, 1)
    grid = image_grid(tiles, grid_w=3)
    assert grid.shape == (4, 6, 1)
    np.testing.assert_array_equal(grid[0:2, 2:4], tiles[1])
    np.testing.assert_array_equal(grid[2:4, 0:2], tiles[3])
    assert (grid[2:4, 4:6] == 0).all()  # empty cell
    up = upscale_for_viewing(grid, tile_resolution=32, min_tile=128)
    assert up.shape == (16, 24, 1)
    np.testing.assert_array_equal(up[::4, ::4], grid)
    assert upscale_for_viewing(grid, tile_resolution=256) is grid


def test_format_duration_and_progress(capsys):
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m 05s"
    assert format_duration(3725) == "1h 02m 05s"
    assert format_duration(float("nan")) == "?"
    import sys
    with Progress(4, desc="work", unit="img", min_interval=0.0, stream=sys.stdout) as p:
        for _ in range(4):
            p.update()
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("work: 4/4 (100%)") and "ETA" in out[-1]


def test_presets_round_trip_and_validate():
    for name in PRESET_NAMES:
        p = get_preset(name)
        assert Preset.from_json(p.to_json()) == p
        assert p.generator.num_ws == 2 * len(p.generator.block_resolutions)
    auto = get_preset("auto")
    assert auto.train.batch_size == 16 and auto.train.r1_gamma == pytest.approx(0.8192)
    assert auto.generator.num_fp16_res == 4 and auto.generator.conv_clamp == 256
    paper = get_preset("paper256")
    assert (paper.train.batch_size, paper.discriminator.mbstd_group_size, paper.generator.mapping_layers) == (64, 8, 8)
    with pytest.raises(UserError, match="img_resolution"):
        GeneratorConfig(img_resolution=100)
    with pytest.raises(UserError, match="Unknown preset"):
        get_preset("huge")
    with pytest.raises(UserError, match="aug"):
        TrainConfig(aug="sometimes")


def test_discriminator_config_refuses_the_skip_architecture_it_cannot_build():
    from tfstylegan.config import DiscriminatorConfig

    assert DiscriminatorConfig(architecture="orig").architecture == "orig"
    with pytest.raises(UserError, match="architecture must be orig\\|resnet"):
        DiscriminatorConfig(architecture="skip")


def test_launchers_show_their_own_lines_only(tmp_path):
    """TensorFlow's C++ start-up lines (oneDNN, CUDA stubs, cuInit) are hidden unless the user asks for them."""
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFSTYLEGAN_QUIET_TF")}
    r = subprocess.run([sys.executable, "-m", "launchers.train_stylegan", "--data", str(tmp_path / "missing")],
                       cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: --data {tmp_path / 'missing'} does not exist. Prepare a "
                                             "dataset with launchers/prepare_data.py."], r.stderr
