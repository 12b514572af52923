"""The tf.data pipeline over a prepared (phantom) dataset: shapes, ranges, labels, flips, distribution."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.data import pipeline
from tfstylegan.data.phantom import write_phantom_dataset
from tfstylegan.data.prepare import prepare
from tfstylegan.utils.errors import UserError

RES = 16


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    write_phantom_dataset(root / "raw", num_patients_per_class=4, slices_per_patient=2, seed=0, size=128,
                          progress=False)
    prepare(root / "raw", root / "data", resolution=RES, split="0.5,0.25,0.25", progress=False)
    prepare(root / "raw", root / "data16", resolution=RES, bit_depth=16, split="0.5,0.25,0.25",
            progress=False)
    return root


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_manifest_and_counts(data_dir):
    m = pipeline.read_manifest(data_dir / "data")
    assert m["resolution"] == RES and m["class_names"] == ["meningioma", "glioma", "pituitary"]
    assert pipeline.count_images(data_dir / "data", "train") == 12
    assert pipeline.count_images(data_dir / "data", "train", "glioma") == 4
    assert pipeline.count_images(data_dir / "data", "val", "glioma") == 2


def test_labelled_batches(data_dir):
    ds = pipeline.load_dataset(data_dir / "data", "train", batch_size=5, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (5, RES, RES, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    x, y = _all(ds)
    assert x.shape == (12, RES, RES, 1) and x.min() >= -1 and x.max() <= 1
    assert x.min() == -1 and x.max() == 1  # percentile-normalised slices reach both ends
    assert sorted(y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    ds = pipeline.load_dataset(data_dir / "data", "train", batch_size=5, drop_remainder=True)
    assert [b[0].shape[0] for b in ds] == [5, 5]
    assert ds.element_spec[0].shape == (5, RES, RES, 1)


def test_values_match_the_stored_png(data_dir):
    x, labels, pids = pipeline.load_arrays(data_dir / "data", "train", class_name="pituitary")
    from tfstylegan.data.tfrecords import decode_png, read_examples
    first = sorted((data_dir / "data" / "train").glob("pituitary-*.tfrecord"))[0]
    rec = read_examples(first)[0]
    np.testing.assert_allclose(x[0, ..., 0], decode_png(rec["image"]) / 127.5 - 1, atol=1e-6)
    assert pids[0] == rec["patient_id"] and (labels == 2).all() and x.shape == (4, RES, RES, 1)
    x16, _, _ = pipeline.load_arrays(data_dir / "data16", "train", class_name="pituitary")
    np.testing.assert_allclose(x16, x, atol=1.5 / 127.5)  # same images, finer levels
    assert len(np.unique(x16)) > len(np.unique(x))


def test_class_filter_and_shuffle(data_dir):
    ds = pipeline.load_dataset(data_dir / "data", "train", class_name="meningioma", batch_size=2)
    _, y = _all(ds)
    assert (y == 0).all() and len(y) == 4
    a, _ = _all(pipeline.load_dataset(data_dir / "data", "train", batch_size=12, seed=0))
    b, _ = _all(pipeline.load_dataset(data_dir / "data", "train", batch_size=12, seed=0))
    c, _ = _all(pipeline.load_dataset(data_dir / "data", "train", batch_size=12, seed=5))
    n, _ = _all(pipeline.load_dataset(data_dir / "data", "train", batch_size=12, shuffle=False))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, n)
    key = lambda arr: sorted(map(bytes, arr.reshape(len(arr), -1)))  # noqa: E731
    assert key(a) == key(n)  # a permutation of the same images


def test_mirror_flips_image_and_mask(data_dir):
    plain = pipeline.load_dataset(data_dir / "data", "train", batch_size=12, shuffle=False, with_mask=True)
    flipped = pipeline.load_dataset(data_dir / "data", "train", batch_size=12, shuffle=False,
                                    with_mask=True, mirror=True, seed=3)
    (p, _), (f, _) = next(iter(plain)), next(iter(flipped))
    assert p.shape == (12, RES, RES, 2)
    p, f = p.numpy(), f.numpy()
    was_flipped = [np.array_equal(fi, pi[:, ::-1]) for fi, pi in zip(f, p)]
    same = [np.array_equal(fi, pi) for fi, pi in zip(f, p)]
    assert all(a or b for a, b in zip(was_flipped, same))
    assert 0 < sum(was_flipped) < 12 and sum(same) > 0
    masks = p[..., 1]
    assert set(np.unique(masks)) == {-1.0, 1.0} and (masks.reshape(12, -1).max(1) == 1).all()


def test_repeat_and_unbatched(data_dir):
    ds = pipeline.load_dataset(data_dir / "data", "test", batch_size=4, repeat=True, mirror=True)
    batches = list(ds.take(5))
    assert len(batches) == 5 and all(b[0].shape == (4, RES, RES, 1) for b in batches)
    x, y = next(iter(pipeline.load_dataset(data_dir / "data", "test")))
    assert x.shape == (RES, RES, 1) and y.shape == ()


def test_under_mirrored_strategy(data_dir):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = tf.distribute.MirroredStrategy(devices)
    ds = pipeline.load_dataset(data_dir / "data", "train", batch_size=4, repeat=True, mirror=True,
                               drop_remainder=True)
    dist = strategy.experimental_distribute_dataset(ds)

    @tf.function
    def step(batch):
        def replica_fn(x, y):
            return tf.shape(x)[0], tf.reduce_max(tf.abs(x)), tf.shape(y)[0]
        return strategy.run(replica_fn, args=batch)

    it = iter(dist)
    for _ in range(3):
        n, peak, ny = (strategy.experimental_local_results(v) for v in step(next(it)))
        assert [int(v) for v in n] == [4 // len(devices)] * len(devices) == [int(v) for v in ny]
        assert max(float(v) for v in peak) <= 1.0
    assert strategy.num_replicas_in_sync == len(devices) == 2  # conftest's two logical CPUs


def test_errors(data_dir, tmp_path):
    with pytest.raises(UserError, match="manifest.json not found"):
        pipeline.load_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        pipeline.read_manifest(tmp_path)
    with pytest.raises(UserError, match="no class 'notumor'"):
        pipeline.load_dataset(data_dir / "data", class_name="notumor")
    with pytest.raises(UserError, match="split must be one of"):
        pipeline.load_dataset(data_dir / "data", split="training")
    m = json.loads((data_dir / "data" / "manifest.json").read_text())
    assert m["has_mask"] is True


def test_with_mask_refused_without_masks(tmp_path):
    from PIL import Image
    for cls in ("glioma", "pituitary"):
        (tmp_path / "src" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((64, 64), 50 * i, np.uint8)).save(tmp_path / "src" / cls / f"{i}.png")
    prepare(tmp_path / "src", tmp_path / "data", resolution=RES, split="1,0,0", progress=False)
    with pytest.raises(UserError, match="no tumor masks"):
        pipeline.load_dataset(tmp_path / "data", with_mask=True)
    with pytest.raises(UserError, match="no images of class 'glioma' in the 'val' split"):
        pipeline.load_dataset(tmp_path / "data", "val", class_name="glioma")
    x, y = _all(pipeline.load_dataset(tmp_path / "data", batch_size=8, shuffle=False))
    assert x.shape == (4, RES, RES, 1) and y.tolist() == [1, 1, 2, 2]
