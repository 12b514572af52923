"""Synthetic datasets: generate, filter for privacy and quality, write in the prepared-dataset layout.

`write_synthetic_dataset(checkpoint, data_dir, out_dir, config, classifier)` makes `N` slices per class
(or the real training split's class ratios) that `load_dataset`, `train_classifier --extra_data` and any
tool reading PNGs use as data, with a privacy report that must travel with it.

Candidates. Class by class, seeds `config.seed`, `seed + 1`, ... in order; a seed means the same image as in
`generate` and `evaluate` (`generation.generate_images`: z = RandomState(seed).randn, the class label,
truncation psi, noise mode). Each candidate is quantised to the real dataset's bit depth first, so what is
checked is exactly what is stored. Then:

- privacy filter: the candidate's nearest real *training* slice (the real dataset's whole train split, every
  class) in pixel space (L2 of the [-1, 1] image channel) and, with a judge, in the judge's 2048-d feature
  space, as `tfstylegan.metrics.memorization` measures it. The baseline is the held-out (val + test) real
  slices of the same class: their distances to the same training slices. A candidate closer than the
  `privacy_percentile`-th percentile of the baseline in either space is dropped: an unseen real slice of
  that class comes that close only `privacy_percentile` % of the time. An exact copy has distance 0.
- quality filter (optional): the judge's probability of the candidate's own class must be >= `min_class_prob`.

Dropped candidates are replaced by the next seeds until `N` are kept (at most `max_draws_per_slice * N`
draws per class). Generation streams in batches: memory holds one batch of candidates, the reference set
and a few numbers per slice, whatever `N`.

Output (docs/ARCHITECTURE.md's prepared layout, a train split only):

    <out>/manifest.json                     the prepared-dataset keys + `synthetic` (provenance, filters)
    <out>/train/<class>-<k>-of-<n>.tfrecord  seed order; slice_id = patient_id = '<class>-seed<seed>'
    <out>/preview_<class>.png               the first 16 slices
    <out>/slices.csv                        one row per slice: slice_id, class, seed, shard, PNG file(s),
                                            its distances to the training set and its class probability
    <out>/privacy/report.json               drop counts, thresholds, distance summaries, closest kept pairs
    <out>/privacy/closest_pairs_<class>.png the kept slices closest to a training slice, each beside it (real
                                            patients' slices: for the data owner's review, not for publication)
    <out>/privacy/distances_<class>.png     kept->train vs held-out->train distances, with the threshold
    <out>/png/<class>/<slice_id>.png (+ _mask.png) and png/SHA256SUMS   (`png=True`)

The output folder appears only when complete. Work in progress lives in `.<out>.partial/` beside it, one
finished shard at a time; after an interruption `resume=True` continues from the last finished shard and
gives the same dataset as an uninterrupted run.

One module per reason to change, bottom to top: `settings` (`SyntheticDatasetConfig`, the class counts, slice
ids; no TensorFlow, so the launcher checks its flags before TensorFlow starts), `filters` (the real reference,
the candidates and the privacy and quality decisions), `shards` (the shards, their resumable states and the
publication; `write_images_dataset`), `report` (privacy report, pictures, slices.csv, manifest) and `run`
(`write_synthetic_dataset`). Every name stays importable from this package; each submodule is imported on first
use (`tfstylegan.utils.lazy`).
"""

from tfstylegan.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "settings": ("FORMAT_VERSION", "MAX_SEED", "SOURCE_FORMAT", "PREVIEW_IMAGES", "CLOSEST_PAIRS", "PRIVACY_DIR",
                 "PNG_DIR", "STATE_DIR", "REASONS", "SyntheticDatasetConfig", "class_counts", "compact_seeds",
                 "slice_id"),
    "filters": ("quantize", "to_float", "read_split", "PrivacyReference", "judge_pixels", "Candidate",
                "generate_candidates", "candidates"),
    "shards": ("train_only_manifest", "write_images_dataset"),
    "run": ("write_synthetic_dataset",),
})
