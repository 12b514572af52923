"""Built-in phantom data: T1 contrast-like axial brain slices with the three tumor classes.

So that the whole toolkit runs with no download, `write_phantom_dataset` writes a small
dataset **in the real Figshare MATLAB v7.3 layout** (`<i>.mat` with `cjdata/image` int16
transposed, `label`, `PID`, `tumorMask`, `tumorBorder`, plus `cvind.mat` with 5
patient-separated folds), which then goes through the same reader as real data.

The anatomy (all sizes relative to the field of view, so any `size` works):
- a head ellipse with bright scalp (fat), dark skull (cortical bone), a thin dark CSF layer,
  a grey-matter ribbon with gyral folding around brighter white matter (T1: WM > GM > CSF),
  the interhemispheric fissure, and lateral ventricles (CSF, dark) whose size depends on
  the slice level; sellar-level slices (pituitary patients) show the brainstem with its
  cistern and the air-filled sphenoid sinus instead of the ventricles;
- per patient: head size, shape and angle, tissue intensities, overall scanner gain,
  ventricle size, a smooth multiplicative bias field, Rician noise level and blur.
- tumors, contrast-enhancing (T1c):
  meningioma: extra-axial, dura-based (convexity or falx), homogeneous bright, broad base,
  CSF cleft and a dural tail; glioma: intra-axial in a hemisphere, irregular outline,
  enhancing ring around a dark necrotic core, surrounded by dark edema; pituitary: small,
  midline, sellar, homogeneous enhancement above the sphenoid sinus.
Each patient gives `slices_per_patient` neighbouring slices through its tumor (the tumor
cross-section and the anatomy change with the level). Tumors lie inside the study's central
crop (0.25 per side), so the classes stay distinguishable after preprocessing.

Generation is vectorised numpy; everything derives from `seed`, so outputs are identical
from run to run.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.data.figshare import write_cvind, write_figshare_mat
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_dir, write_json
from tfstylegan.utils.progress import Progress

NUM_FOLDS = 5


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(a, sigma, mode="nearest") if sigma > 0 else a


def _soft(d: np.ndarray, width: float) -> np.ndarray:
    """Soft indicator of d < 0 (d a signed distance-like field), width in normalised units."""
    return np.float32(0.5) - np.float32(0.5) * np.tanh(d * np.float32(1.0 / max(width, 1e-6)))


def _patient_params(rng: np.random.Generator, class_name: str) -> dict:
    p = {
        "cx": rng.normal(0, 0.02), "cy": rng.normal(0, 0.02),
        "ax": rng.uniform(0.50, 0.57), "ay": rng.uniform(0.60, 0.68), "theta": rng.normal(0, 0.06),
        "scalp": rng.uniform(0.035, 0.05), "skull": rng.uniform(0.03, 0.045),
        "csf": rng.uniform(0.012, 0.022), "cortex": rng.uniform(0.05, 0.075),
        "wm": 1.0, "gm": rng.uniform(0.70, 0.80), "csf_i": rng.uniform(0.18, 0.28),
        "fat": rng.uniform(1.1, 1.4), "bone": rng.uniform(0.06, 0.14),
        "gain": rng.uniform(350.0, 1400.0), "noise": rng.uniform(0.015, 0.035),
        "blur": rng.uniform(0.5, 1.0), "bias": rng.uniform(-0.12, 0.12, size=5),
        "vent": rng.uniform(0.7, 1.3), "enh": rng.uniform(1.30, 1.60),
        "gyri": [(int(rng.integers(10, 22)), rng.uniform(0, 2 * np.pi), rng.uniform(0.12, 0.28))
                 for _ in range(3)],
        "level": rng.uniform(-0.1, 0.2),
    }
    if class_name == "meningioma":
        p["R"] = rng.uniform(0.07, 0.14)
        p["site"] = "falx" if rng.uniform() < 0.5 else "convexity"
        p["side"] = rng.choice([-1.0, 1.0])
        p["along"] = rng.uniform(-0.35, 0.35)             # falx: AP position
        p["angle"] = rng.uniform(-0.6, 0.6) + (np.pi if rng.uniform() < 0.5 else 0.0)  # convexity
    elif class_name == "glioma":
        p["R"] = rng.uniform(0.08, 0.15)
        p["side"] = rng.choice([-1.0, 1.0])
        p["gx"] = rng.uniform(0.14, 0.30)
        p["gy"] = rng.uniform(-0.30, 0.30)
        p["harm"] = [(k, rng.uniform(0, 0.16), rng.uniform(0, 2 * np.pi)) for k in range(2, 6)]
        p["ring"] = rng.uniform(0.25, 0.45)
        p["edema"] = rng.uniform(1.5, 2.1)
        p["necrotic"] = rng.uniform() < 0.85
    else:  # pituitary
        p["R"] = rng.uniform(0.025, 0.055)
        p["py"] = -rng.uniform(0.02, 0.10)
        p["px"] = rng.normal(0, 0.008)
        p["level"] = rng.uniform(-0.75, -0.6)             # sellar level: low slices
    return p


def _geometry(p: dict, size: int) -> dict:
    """Per-patient coordinate fields, float32 [S, S]: image (x, y), head frame (xr, yr), angle."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(t, t, indexing="ij")                          # [S, S], y down = posterior
    c, s = np.float32(np.cos(p["theta"])), np.float32(np.sin(p["theta"]))
    xr = c * (x - np.float32(p["cx"])) + s * (y - np.float32(p["cy"]))   # head frame
    yr = -s * (x - np.float32(p["cx"])) + c * (y - np.float32(p["cy"]))
    phi = np.arctan2(yr, xr)
    folding = sum(np.float32(a) * np.sin(k * phi + np.float32(ph)) for k, ph, a in p["gyri"])
    return {"x": x, "y": y, "xr": xr, "yr": yr, "phi": phi, "folding": folding}


def _slice(p: dict, class_name: str, dz: float, size: int, rng: np.random.Generator, geo: dict):
    """One slice of one patient. Returns image float [S, S] (before gain), mask bool [S, S], border."""
    x, y, xr, yr, phi, folding = (geo[k] for k in ("x", "y", "xr", "yr", "phi", "folding"))
    level = p["level"] + np.float32(0.2) * dz
    scale = np.float32(np.sqrt(max(1.0 - 0.35 * level ** 2, 0.5)))
    ax, ay = p["ax"] * scale, p["ay"] * scale
    rad = np.sqrt((xr / ax) ** 2 + (yr / ay) ** 2)                   # 1 on the head outline
    mean_ax = 0.5 * (ax + ay)
    edge = 0.004

    def inside(depth):  # soft indicator of being `depth` inside the outline
        return _soft((rad - 1.0) * mean_ax + depth, edge)

    head = inside(0.0)
    in_skull = inside(p["scalp"])
    in_csf = inside(p["scalp"] + p["skull"])
    in_brain = inside(p["scalp"] + p["skull"] + p["csf"])
    in_wm = inside(p["scalp"] + p["skull"] + p["csf"] + p["cortex"] * (1.0 + 0.6 * folding))

    img = 0.02 * np.ones_like(x)
    img = img + head * (p["fat"] - 0.02)
    img = img + in_skull * (p["bone"] - p["fat"])
    img = img + in_csf * (p["csf_i"] - p["bone"])
    img = img + in_brain * (p["gm"] - p["csf_i"])
    img = img + in_wm * (p["wm"] - p["gm"])

    csf = np.zeros_like(x)
    sellar = class_name == "pituitary"
    fissure = _soft(np.abs(xr) - 0.006, 0.002) * _soft(np.abs(yr) - ay * (0.3 if sellar else 0.9), 0.01)
    csf = np.maximum(csf, fissure * in_brain)
    if not sellar:  # lateral ventricles (butterfly), larger at mid-levels
        v = p["vent"] * max(0.0, 1.0 - 1.8 * abs(level - 0.1))
        if v > 0.05:
            for side in (-1.0, 1.0):
                vx, vy = xr - side * 0.085 * v, yr + 0.02
                cr, sr = np.cos(side * 0.28), np.sin(side * 0.28)
                u1, u2 = cr * vx - sr * vy, sr * vx + cr * vy
                d = np.sqrt((u1 / (0.045 * v)) ** 2 + (u2 / (0.22 * v)) ** 2) - 1.0
                csf = np.maximum(csf, _soft(d * 0.05, 0.003))
    else:  # sellar level: brainstem with its cistern, sphenoid sinus
        stem_d = np.sqrt(xr ** 2 + (yr - 0.16) ** 2)
        csf = np.maximum(csf, _soft(stem_d - 0.14, 0.004) * (1 - _soft(stem_d - 0.11, 0.004)))
    img = img * (1 - csf) + p["csf_i"] * csf
    if sellar:
        sinus = np.sqrt((xr / 0.09) ** 2 + ((yr - (p["py"] - p["R"] - 0.07)) / 0.05) ** 2) - 1.0
        img = img * (1 - _soft(sinus * 0.05, 0.003)) + 0.03 * _soft(sinus * 0.05, 0.003)

    # Tissue texture (smooth, small), before the tumor.
    tex = _smooth(rng.standard_normal(x.shape).astype(np.float32), 2.5 * size / 512)
    img = img * (1 + 0.12 * tex * in_brain)

    r = np.float32(np.sqrt(max(p["R"] ** 2 - (0.5 * dz * p["R"]) ** 2, (0.5 * p["R"]) ** 2)))  # cross-section
    if class_name == "meningioma":
        if p["site"] == "falx":
            tx = p["side"] * 0.6 * r
            ty = p["along"] * ay
            d = np.sqrt(((xr - tx) / 1.1) ** 2 + (yr - ty) ** 2) - r
            tail = _soft(np.abs(xr) - 0.005, 0.002) * _soft(np.abs(yr - ty) - 2.2 * r, 0.01)
        else:
            a = p["angle"]
            ca, sa = np.cos(a), np.sin(a)
            rim = 1.0 - (p["scalp"] + p["skull"]) / mean_ax          # inner skull, in rad units
            tx, ty = ca * (ax * rim - 0.3 * r), sa * (ay * rim - 0.3 * r)
            # broad dural base: an ellipse flattened against the skull, centred on the inner table
            u1 = (xr - tx) * ca + (yr - ty) * sa                         # radial
            u2 = -(xr - tx) * sa + (yr - ty) * ca                        # tangential
            d = np.sqrt((u1 / 1.5) ** 2 + (u2 / 1.3) ** 2) - r * 0.9
            tail = _soft(np.abs(rad - rim) * mean_ax - 0.005, 0.002) * _soft(np.abs(u2) - 3.2 * r, 0.01)
        tumor = _soft(d, 0.003) * inside(p["scalp"] + p["skull"] * 0.7)
        cleft = _soft(d - 0.012, 0.003) * (1 - tumor) * in_csf
        img = img * (1 - cleft) + p["csf_i"] * cleft
        tail = tail * in_csf * (1 - tumor)
        img = img * (1 - tail) + p["enh"] * 0.9 * tail
        img = img * (1 - tumor) + p["enh"] * (1 + 0.04 * tex) * tumor
        mask = tumor > 0.5
    elif class_name == "glioma":
        tx, ty = p["side"] * p["gx"], p["gy"] * ay
        dx, dy = xr - tx, yr - ty
        ang = np.arctan2(dy, dx)
        shape = 1.0 + sum(a * np.cos(k * ang + ph) for k, a, ph in p["harm"])
        rr = np.sqrt(dx ** 2 + dy ** 2) / shape                        # irregular radius
        edema = _soft(rr - p["edema"] * r, 0.015) * in_brain
        img = img * (1 - 0.32 * edema)
        tumor = _soft(rr - r, 0.004)
        core = _soft(rr - r * (1 - p["ring"]), 0.006)
        if p["necrotic"]:
            val = (p["enh"] * 0.95) * (tumor - core) + 0.33 * (1 + 0.3 * tex) * core
        else:
            val = (0.85 + 0.35 * tex) * tumor
        img = img * (1 - tumor) + val
        mask = tumor > 0.5
    else:
        tx, ty = p["px"], p["py"]
        d = np.sqrt(((xr - tx) / 1.15) ** 2 + (yr - ty) ** 2) - r
        tumor = _soft(d, 0.003)
        img = img * (1 - tumor) + p["enh"] * 0.85 * (1 + 0.03 * tex) * tumor
        # cavernous sinuses enhance on both sides of the sella
        for side in (-1.0, 1.0):
            cav = _soft(np.sqrt((xr - side * (r * 1.15 + 0.04)) ** 2 + (yr - ty) ** 2) - 0.022, 0.003)
            img = img * (1 - cav) + p["enh"] * 0.75 * cav
        mask = tumor > 0.5

    # Acquisition: blur, bias field, Rician noise.
    img = _smooth(img, p["blur"] * size / 512)
    b = p["bias"]
    img = img * (1 + b[0] * x + b[1] * y + b[2] * x * y + b[3] * (x * x + y * y) + b[4] * x * x)
    sigma = p["noise"]
    n1 = rng.standard_normal(x.shape).astype(np.float32) * sigma
    n2 = rng.standard_normal(x.shape).astype(np.float32) * sigma
    img = np.sqrt((img + n1) ** 2 + n2 ** 2)
    return img, mask, _border(mask)


def _border(mask: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2, ...] (1-based pixel coordinates, x = row as in the Figshare files) of
    points on the mask outline, 32 rays from the tumor centre."""
    size = mask.shape[0]
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros([0], np.float64)
    cy, cx = ys.mean(), xs.mean()
    pts = []
    for a in np.linspace(0, 2 * np.pi, 32, endpoint=False):
        dr, dc = np.sin(a), np.cos(a)
        t = 0.0
        while True:
            r, c = int(round(cy + (t + 1) * dr)), int(round(cx + (t + 1) * dc))
            if not (0 <= r < size and 0 <= c < size) or not mask[r, c]:
                break
            t += 1
        pts += [cy + t * dr + 1, cx + t * dc + 1]
    return np.asarray(pts, np.float64)


def phantom_patient(class_name: str, patient_index: int, seed: int = 0, slices_per_patient: int = 4,
                    size: int = 512) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The slices of one phantom patient.

    Returns:
      A list of (image int16 [size, size] raw-like intensities, mask uint8 [size, size] in {0, 1},
      border float64 [2k]) tuples, one per slice, identical for identical arguments.
    """
    if class_name not in CLASS_NAMES:
        raise ValueError(f"Unknown class {class_name!r}. Choose one of {', '.join(CLASS_NAMES)}.")
    rng = np.random.default_rng([int(seed), CLASS_NAMES.index(class_name), int(patient_index)])
    p = {k: (np.float32(v) if isinstance(v, float) else
             v.astype(np.float32) if isinstance(v, np.ndarray) else v)
         for k, v in _patient_params(rng, class_name).items()}
    geo = _geometry(p, int(size))
    k = int(slices_per_patient)
    dzs = np.linspace(-1.0, 1.0, k) if k > 1 else np.zeros([1])
    out = []
    for dz in dzs:
        img, mask, border = _slice(p, class_name, np.float32(dz), int(size), rng, geo)
        raw = np.clip(np.rint(img * p["gain"]), 0, 32767).astype(np.int16)
        out.append((raw, mask.astype(np.uint8), border))
    return out


def _write_patient(job: tuple) -> int:
    """Writes one patient's slices as `first.mat`, `first + 1.mat`, ... (a worker's unit of work)."""
    folder, cls, ci, pi, seed, k, size, pid, first = job
    for j, (img, mask, border) in enumerate(phantom_patient(cls, pi, seed, k, size)):
        write_figshare_mat(Path(folder) / f"{first + j}.mat", img, ci + 1, pid, mask, border)
    return k


def default_workers() -> int:
    """Processes for the phantom: the cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # (no sched_getaffinity: macOS, Windows)
        return max(os.cpu_count() or 1, 1)


def write_phantom_dataset(out_dir: str | os.PathLike, num_patients_per_class: int = 30,
                          slices_per_patient: int = 4, seed: int = 0, size: int = 512,
                          overwrite: bool = False, progress: bool = True, workers: int | None = None) -> dict:
    """Writes a phantom dataset in the Figshare v7.3 layout into `out_dir` (atomically).

    Files: `1.mat` ... `N.mat` (patients interleaved across classes, each patient's slices
    consecutive), `cvind.mat` (5 folds, patient-separated and stratified by class), and
    `phantom.json` (the settings and counts). Returns that summary dict.

    Patients are independent (each has its own seeded generator and file numbers), so `workers`
    processes (default: one per core; 1 = this process) write them in parallel; the files are the
    same whatever the number of workers.
    """
    if int(num_patients_per_class) < 1 or int(slices_per_patient) < 1:
        raise UserError(f"--patients_per_class and --slices_per_patient must be >= 1. Received: "
                        f"{num_patients_per_class}, {slices_per_patient}")
    if int(size) < 64:
        raise UserError(f"Phantom size must be >= 64 px. Received: size={size}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise UserError(f"--workers must be >= 1. Received: {workers}")
    npc, k = int(num_patients_per_class), int(slices_per_patient)
    fold_rng = np.random.default_rng([int(seed), 99])
    patient_fold = {}
    for ci in range(len(CLASS_NAMES)):
        perm = fold_rng.permutation(npc)
        for rank, pi in enumerate(perm):
            patient_fold[(ci, int(pi))] = rank % NUM_FOLDS + 1
    folds, counts = [], {c: 0 for c in CLASS_NAMES}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp, \
            Progress(npc * len(CLASS_NAMES), desc="phantom patients", unit="patient",
                     enabled=progress) as bar:
        jobs = []
        for pi in range(npc):
            for ci, cls in enumerate(CLASS_NAMES):
                index = pi * len(CLASS_NAMES) + ci
                jobs.append((str(tmp), cls, ci, pi, int(seed), k, int(size), f"PH{index + 1:05d}", index * k + 1))
                folds += [patient_fold[(ci, pi)]] * k
                counts[cls] += k
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                _write_patient(job)
                bar.update()
        else:
            # spawn, not fork: the caller may have TensorFlow's threads running (tests, notebooks)
            with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)),
                                                        mp_context=multiprocessing.get_context("spawn")) as pool:
                for _ in pool.map(_write_patient, jobs):
                    bar.update()
        n = len(folds)
        write_cvind(Path(tmp) / "cvind.mat", np.asarray(folds))
        summary = {"generator": "tfstylegan.data.phantom", "seed": int(seed), "size": int(size),
                   "patients_per_class": npc, "slices_per_patient": k, "num_slices": n,
                   "counts": counts, "num_folds": NUM_FOLDS}
        write_json(Path(tmp) / "phantom.json", summary)
    return summary
