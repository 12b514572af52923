"""get_strategy: names, MirroredStrategy over logical CPUs, TF_CONFIG validation."""

import json

import pytest
import tensorflow as tf

from tfstylegan.training.distribute import _check_tf_config, get_strategy
from tfstylegan.utils.errors import UserError


def test_default():
    assert get_strategy("default") is tf.distribute.get_strategy()


def test_mirrored_uses_all_logical_cpus():
    s = get_strategy("mirrored")
    assert isinstance(s, tf.distribute.MirroredStrategy)
    assert s.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU")) == 2  # tests/conftest.py
    with s.scope():
        v = tf.Variable(1.0)
    total = s.reduce(tf.distribute.ReduceOp.SUM, s.run(lambda: v * 2.0), axis=None)
    assert float(total) == 4.0  # two replicas, each 2.0


def test_unknown_name():
    with pytest.raises(UserError, match="default, mirrored, multi_worker"):
        get_strategy("tpu")


def test_multi_worker_tf_config_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs the TF_CONFIG"):
        get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        get_strategy("multi_worker")
    bad = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(bad))
    with pytest.raises(UserError, match="index 3 is out of range"):
        get_strategy("multi_worker")
    with pytest.raises(UserError, match="'host:port'"):
        _check_tf_config(json.dumps({"cluster": {"worker": ["nohostport"]}, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(UserError, match="not a job"):
        _check_tf_config(json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}))


def test_valid_tf_config_passes():
    cfg = {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 1}}
    assert _check_tf_config(json.dumps(cfg)) == cfg
