"""Data: raw sources -> prepared TFRecord datasets -> tf.data pipelines.

- `classes`: the canonical class names and their indices.
- `figshare`: the Figshare `.mat` reader (MATLAB v7.3 / v5, folders or zips) and v7.3 writer.
- `folders`: class-subfolder image datasets (Kaggle layouts).
- `medical`: DICOM series and NIfTI volumes listed in a labels CSV (hospital data).
- `phantom`: built-in synthetic T1c slices written in the Figshare layout (no download needed).
- `preprocess`: crop, percentile normalisation, antialiased resize.
- `tfrecords`: the Example format and shard writing.
- `prepare`: `prepare(...)`, the whole preparation (used by `launchers/prepare_data.py`).
- `pipeline`: `load_dataset`, `load_arrays`, `count_images`, `read_manifest`.

Submodules are imported explicitly (`from tfstylegan.data import pipeline`) so that importing
the package does not pull in TensorFlow.
"""
