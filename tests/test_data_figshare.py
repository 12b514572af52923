"""The Figshare reader on .mat files written here, independently, in the exact MATLAB v7.3 layout."""

import io
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

from tfstylegan.data import figshare
from tfstylegan.utils.errors import UserError

HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2015 HDF5 schema 1.00 ."


def write_raw_v73(path, image, label, pid, mask, border=(10.0, 20.0, 30.0, 40.0), fields=None):
    """What MATLAB's `save -v7.3` produces for `cjdata`: HDF5 + 512-byte userblock, column-major arrays.

    `fields` limits which cjdata fields are written (to make broken files).
    """
    fields = fields or ("PID", "image", "label", "tumorBorder", "tumorMask")
    with h5py.File(path, "w", userblock_size=512) as f:
        cj = f.create_group("cjdata")
        cj.attrs["MATLAB_class"] = np.bytes_("struct")
        data = {
            "PID": (np.array([[ord(c) for c in pid]], np.uint16).T, "char"),            # (n, 1)
            "image": (np.ascontiguousarray(np.asarray(image).T), "int16"),
            "label": (np.array([[float(label)]]), "double"),                           # (1, 1)
            "tumorBorder": (np.asarray(border, np.float64).reshape(1, -1), "double"),  # (1, k)
            "tumorMask": (np.ascontiguousarray(np.asarray(mask, np.uint8).T), "logical"),
        }
        for name in fields:
            arr, cls = data[name]
            ds = cj.create_dataset(name, data=arr)
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
            if cls in ("char", "logical"):
                ds.attrs["MATLAB_int_decode"] = np.int32(2 if cls == "char" else 1)
    with open(path, "r+b") as fh:
        fh.write(HEADER.ljust(116) + b"\0" * 8 + b"\x00\x02IM")


def _slice_data(h=512, w=512, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 3000, size=(h, w)).astype(np.int16)
    image[:10, :] = 5  # an asymmetric band: a missed transpose shows
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4:h // 4 + 20, w // 3:w // 3 + 7] = 1
    return image, mask


def _entry(path):
    return figshare.list_mat_entries(path)[0]


@pytest.mark.parametrize("shape", [(512, 512), (300, 400)])
def test_reads_v73_layout_and_transposes(tmp_path, shape):
    image, mask = _slice_data(*shape)
    write_raw_v73(tmp_path / "17.mat", image, 2, "MR040237", mask)
    s = figshare.read_slice(_entry(tmp_path / "17.mat"))
    assert s.version == "v7.3"
    assert s.image.shape == shape and s.image.dtype == np.int16
    np.testing.assert_array_equal(s.image, image)
    np.testing.assert_array_equal(s.mask, mask)
    assert (s.label, s.class_name) == (2, "glioma")
    assert s.patient_id == "MR040237" and s.slice_id == "17"


@pytest.mark.parametrize("label,name", [(1, "meningioma"), (2, "glioma"), (3, "pituitary")])
def test_label_mapping(tmp_path, label, name):
    image, mask = _slice_data(64, 64)
    write_raw_v73(tmp_path / "1.mat", image, label, "100360", mask)
    assert figshare.read_slice(_entry(tmp_path / "1.mat")).class_name == name


def test_v5_fallback(tmp_path):
    image, mask = _slice_data(300, 400)
    scipy.io.savemat(tmp_path / "5.mat", {"cjdata": {
        "PID": "P07", "image": image, "label": np.array([[3.0]]), "tumorMask": mask.astype(bool),
        "tumorBorder": np.array([[1.0, 2.0]])}}, format="5")
    with open(tmp_path / "5.mat", "rb") as f:
        assert not f.read(600).startswith(b"\x89HDF")
    s = figshare.read_slice(_entry(tmp_path / "5.mat"))
    assert s.version == "v5"
    np.testing.assert_array_equal(s.image, image)  # scipy is row-major already: no transpose
    np.testing.assert_array_equal(s.mask, mask)
    assert (s.class_name, s.patient_id) == ("pituitary", "P07")


def test_writer_produces_the_matlab_layout(tmp_path):
    image, mask = _slice_data(96, 128)
    figshare.write_figshare_mat(tmp_path / "a.mat", image, 1, "PX1", mask, border=[1.0, 2.0, 3.0, 4.0])
    write_raw_v73(tmp_path / "b.mat", image, 1, "PX1", mask, border=[1.0, 2.0, 3.0, 4.0])
    with open(tmp_path / "a.mat", "rb") as f:
        head = f.read(1024)
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[126:128] == b"IM"
    assert head[512:520] == b"\x89HDF\r\n\x1a\n"  # the HDF5 superblock after the 512-byte userblock
    with h5py.File(tmp_path / "a.mat", "r") as a, h5py.File(tmp_path / "b.mat", "r") as b:
        assert a.userblock_size == 512
        assert sorted(a["cjdata"].keys()) == sorted(b["cjdata"].keys())
        assert a["cjdata"].attrs["MATLAB_class"] == b"struct"
        for k in b["cjdata"]:
            da, db = a["cjdata"][k], b["cjdata"][k]
            assert (da.shape, da.dtype) == (db.shape, db.dtype), k
            np.testing.assert_array_equal(da[()], db[()])
            assert da.attrs["MATLAB_class"] == db.attrs["MATLAB_class"], k
        assert a["cjdata/image"].shape == (128, 96)  # stored transposed
        assert a["cjdata/PID"].shape == (3, 1) and a["cjdata/label"].shape == (1, 1)
        assert a["cjdata/tumorBorder"].shape == (1, 4)


def test_zip_sources_nested_and_flat(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(1, 5):
        image, mask = _slice_data(64, 64, seed=i)
        write_raw_v73(raw / f"{i}.mat", image, 1 + i % 3, f"P{i // 2}", mask)
    figshare.write_cvind(raw / "cvind.mat", np.array([1, 1, 2, 2]))
    inner = []
    for lo, hi in ((1, 2), (3, 4)):
        zp = tmp_path / f"brainTumorDataPublic_{lo}-{hi}.zip"
        with zipfile.ZipFile(zp, "w") as z:
            for i in range(lo, hi + 1):
                z.write(raw / f"{i}.mat", f"{i}.mat")
        inner.append(zp)
    outer = tmp_path / "1512427.zip"
    with zipfile.ZipFile(outer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for zp in inner:
            z.write(zp, zp.name)
        z.write(raw / "cvind.mat", "cvind.mat")
    for source in (str(outer), ",".join(str(p) for p in inner), str(raw)):
        entries = [e for e in figshare.list_mat_entries(source) if e.stem != "cvind"]
        assert [e.stem for e in entries] == ["1", "2", "3", "4"], source
        for e in entries:
            s = figshare.read_slice(e)
            np.testing.assert_array_equal(s.image, _slice_data(64, 64, seed=int(e.stem))[0])
    entries = figshare.list_mat_entries(outer)
    assert entries[0].name.startswith(str(outer) + ":brainTumorDataPublic_1-2.zip:")
    cv = [e for e in entries if e.stem == "cvind"][0]
    np.testing.assert_array_equal(figshare.read_cvind(cv), [1, 1, 2, 2])


def test_cvind_layout(tmp_path):
    figshare.write_cvind(tmp_path / "cvind.mat", np.array([3, 1, 2]))
    with h5py.File(tmp_path / "cvind.mat", "r") as f:
        assert f["cvind"].shape == (1, 3) and f["cvind"].dtype == np.float64


# Bad input: every case names the file.

def test_corrupt_hdf5(tmp_path):
    image, mask = _slice_data(128, 128)
    write_raw_v73(tmp_path / "good.mat", image, 1, "P", mask)
    data = (tmp_path / "good.mat").read_bytes()
    (tmp_path / "9.mat").write_bytes(data[:len(data) // 3])
    with pytest.raises(UserError, match=r"9\.mat.*(corrupt|not a readable)"):
        figshare.read_slice(_entry(tmp_path / "9.mat"))


def test_not_hdf5_nor_v5(tmp_path):
    (tmp_path / "3.mat").write_bytes(b"this is not a MAT file at all\n" * 40)
    with pytest.raises(UserError, match=r"3\.mat is not a readable MATLAB file"):
        figshare.read_slice(_entry(tmp_path / "3.mat"))


@pytest.mark.parametrize("missing", ["image", "label", "PID", "tumorMask"])
def test_missing_cjdata_field(tmp_path, missing):
    image, mask = _slice_data(64, 64)
    fields = [f for f in ("PID", "image", "label", "tumorBorder", "tumorMask") if f != missing]
    write_raw_v73(tmp_path / "4.mat", image, 1, "P", mask, fields=fields)
    with pytest.raises(UserError, match=rf"4\.mat: cjdata has no '{missing}' field"):
        figshare.read_slice(_entry(tmp_path / "4.mat"))


def test_missing_cjdata_struct(tmp_path):
    with h5py.File(tmp_path / "6.mat", "w", userblock_size=512) as f:
        f.create_dataset("other", data=np.zeros((2, 2)))
    with pytest.raises(UserError, match=r"6\.mat: no 'cjdata'"):
        figshare.read_slice(_entry(tmp_path / "6.mat"))


@pytest.mark.parametrize("label", [0, 4, 2.5])
def test_unknown_label(tmp_path, label):
    image, mask = _slice_data(64, 64)
    write_raw_v73(tmp_path / "8.mat", image, label, "P", mask)
    with pytest.raises(UserError, match=r"8\.mat.*label"):
        figshare.read_slice(_entry(tmp_path / "8.mat"))


def test_bad_zip_named(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 nope")
    with pytest.raises(UserError, match="broken.zip"):
        figshare.list_mat_entries(tmp_path)


def test_reads_from_file_object_in_zip_without_extracting(tmp_path):
    image, mask = _slice_data(64, 64)
    write_raw_v73(tmp_path / "12.mat", image, 3, "P", mask)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(tmp_path / "12.mat", "sub/12.mat")
    (tmp_path / "12.mat").unlink()
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    entries = figshare.list_mat_entries(tmp_path)
    assert len(entries) == 1 and entries[0].name.endswith("a.zip:sub/12.mat")
    assert figshare.read_slice(entries[0]).class_name == "pituitary"
    assert not (tmp_path / "sub").exists()
