"""The real-image stream of StyleGAN2 training: a pure function of (data, seed, images consumed)."""

from __future__ import annotations

import tensorflow as tf

from tfstylegan.data.pipeline import load_dataset, read_manifest
from tfstylegan.utils.errors import UserError


class RealImageStream:
    """Global batches of reals `(img float32 [B, H, W, C] in [-1, 1], label int32 [B])`, forever.

    The stream is a pure function of (data, seed): epoch e is the training split (plus its
    x-flipped copy with `mirror`, as ADA's --mirror doubles the dataset) in the order of a
    full-buffer shuffle seeded by (seed, e); batches run across epoch boundaries. Starting at
    `start_nimg` images gives exactly the continuation of the stream that started at 0, reading
    at most one epoch to get there, so no iterator state needs checkpointing.
    """

    def __init__(self, data_dir, class_name: str | None, with_mask: bool, mirror: bool, seed: int,
                 batch_size: int, start_nimg: int = 0):
        manifest = read_manifest(data_dir)
        counts = manifest["split_counts"].get("train", {})
        n = int(counts.get(class_name, 0)) if class_name else int(sum(int(v) for v in counts.values()))
        base = load_dataset(data_dir, split="train", class_name=class_name, batch_size=None, shuffle=False,
                            mirror=False, with_mask=with_mask, repeat=False, cache=True)
        if mirror:
            base = base.concatenate(base.map(lambda x, y: (tf.reverse(x, axis=[1]), y)))
            n *= 2
        if n < 1:
            raise UserError(f"{data_dir} has no training images{' of ' + class_name if class_name else ''}.")
        self.base, self.n, self.seed, self.batch_size = base, n, int(seed), int(batch_size)
        self.epoch, offset = divmod(int(start_nimg), n)
        self._it = self._epoch_iterator(self.epoch, offset)
        self._carry = None

    def _epoch_iterator(self, epoch: int, skip: int):
        ds = self.base.shuffle(self.n, seed=(self.seed * 1_000_003 + epoch) % (2 ** 31 - 1),
                               reshuffle_each_iteration=False)
        return iter(ds.skip(skip).batch(self.batch_size).prefetch(2))

    def __iter__(self):
        return self

    def __next__(self) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels, need = [], [], self.batch_size
        while need > 0:
            if self._carry is None:
                try:
                    self._carry = next(self._it)
                except StopIteration:
                    self.epoch += 1
                    self._it = self._epoch_iterator(self.epoch, 0)
                    continue
            img, lab = self._carry
            images.append(img[:need])
            labels.append(lab[:need])
            self._carry = (img[need:], lab[need:]) if img.shape[0] > need else None
            need -= int(images[-1].shape[0])
        if len(images) == 1:
            return images[0], labels[0]
        return tf.concat(images, axis=0), tf.concat(labels, axis=0)
