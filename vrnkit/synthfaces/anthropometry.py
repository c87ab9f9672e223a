"""SynthFaces measured the way anthropometrists measure people, against published adult norms.

Each measurement is a straight-line distance (mm) between two soft-tissue landmarks of the face,
as in the 3D Facial Norms database (3DFN: Weinberg et al. 2016; landmark definitions in Kesterke
et al. 2016, Table 2). The landmarks are found on a SynthFaces mesh of the face model's topology:

* from the iBUG-68 landmarks: exocanthion ex (36, 45), endocanthion en (39, 42), cheilion ch (48,
  54), labiale superius ls (51), labiale inferius li (57), stomion sto (between 62 and 66),
  gonion go (4, 12: the jaw angle; the nearest iBUG points);
* from the surface, on the mid-sagittal profile: nasion n (the deepest point from the glabella
  down to the nose), pronasale prn (the nose tip: the front-most point), subnasale sn (the
  deepest point between the nose tip and the upper lip), gnathion gn (below the chin's most
  forward point, where the profile turns under the jaw at 45 degrees);
* alare al (the outer edge of each nostril wing: the bottom of the alar groove, the deepest point
  of the surface beside the nose at the height half-way from prn to sn), tragion t (the ear:
  the mesh's side edge, 15 mm below the eyes) and zygion zy (the widest point of the face over
  the cheekbones, 20 mm or more in front of the tragion).

``python benchmarks/anthropometry.py`` measures 1,000 faces and writes docs/results/anthropometry.md.

>>> from vrnkit.synthfaces.model import FaceModel
>>> model = FaceModel.default()
>>> m = measure(model.mean, model)
>>> sorted(m) == sorted(NORMS)
True
"""
from __future__ import annotations

import numpy as np

from .mesh import NU

# Published adult norms, mm: name -> (what it is, (male mean, SD), (female mean, SD)). 3DFN: the
# 3D Facial Norms database, US adults of European descent aged 18-30 (about 500 men and 850
# women; the sex- and age-specific rows pooled over those ages, the SD including the spread
# between ages). Calipers for zy-zy and go-go, 3D photogrammetry for the rest.
NORMS = {
    "ex-ex": ("outer eye corners (biocular width)", (89.0, 3.9), (85.6, 3.8)),
    "en-en": ("inner eye corners (intercanthal width)", (32.8, 2.9), (31.3, 2.7)),
    "en-ex": ("eye fissure length", (28.7, 1.9), (27.8, 2.0)),
    "al-al": ("nose width", (36.1, 2.5), (32.4, 2.3)),
    "ch-ch": ("mouth width", (50.7, 3.7), (47.8, 3.4)),
    "zy-zy": ("face width (cheekbones)", (137.2, 6.1), (129.7, 5.2)),
    "go-go": ("jaw width (gonial angles)", (104.2, 7.2), (96.7, 7.0)),
    "t-t": ("head width at the ears", (147.8, 5.4), (138.8, 4.9)),
    "n-gn": ("face height", (126.8, 6.5), (118.4, 6.0)),
    "n-sto": ("upper face height", (77.8, 4.5), (74.0, 4.4)),
    "n-sn": ("nose height", (56.6, 3.9), (54.7, 3.8)),
    "sn-gn": ("lower face height", (72.8, 5.2), (66.4, 5.0)),
    "sn-sto": ("upper lip height", (22.3, 2.7), (20.3, 2.6)),
    "n-prn": ("nasal bridge length", (49.7, 3.9), (47.3, 3.6)),
    "sn-prn": ("nose tip protrusion (depth)", (21.1, 2.1), (20.1, 2.0)),
    "t-n": ("upper face depth (ear to nasion)", (126.3, 5.0), (118.7, 4.5)),
    "t-sn": ("middle face depth (ear to nose base)", (132.2, 5.1), (123.6, 4.6)),
    "t-gn": ("lower face depth (ear to chin)", (151.0, 6.3), (138.7, 6.0)),
}
SOURCE = ("3D Facial Norms database: Weinberg SM et al. (2016) The 3D Facial Norms Database: Part 1. "
          "Cleft Palate-Craniofacial Journal 53(6):e185-e197; landmarks as in Kesterke MJ et al. (2016) "
          "Biology of Sex Differences 7:23, Table 2. Sex- and age-specific means and SDs as distributed "
          "with the database's z-score calculator (ages 18-30 pooled).")
TRAGION_Y = 15.0  # mm below the eyes: the ear, on the mesh's side edge (SynthFaces has no ears)
ZYGION_FRONT = 20.0  # mm: the zygion lies in front of the tragion by at least this much


def landmarks(vertices, model) -> dict:
    """The anthropometric landmarks of a SynthFaces mesh -> dict name -> (3,) or (2, 3) (bilateral:
    right, left) float64 positions, mm. vertices: (N, 3) of ``model``'s topology."""
    v = np.asarray(vertices, np.float64)
    if v.shape != model.mean.shape:
        raise ValueError(f"vertices must be ({len(model.mean)}, 3), a mesh of this face model; got {v.shape}")
    lm = v[model.landmarks]
    rows = v.reshape(-1, NU, 3)
    mid = rows[:, NU // 2]  # the mid-sagittal profile, top to bottom
    prn_row = int(np.argmax(mid[:, 2]))
    brow = np.nonzero((mid[:, 1] > lm[19, 1] - 10) & (mid[:, 1] < lm[27, 1]))[0]
    g_row = brow[np.argmax(mid[brow, 2])]  # glabella: the most prominent point between the brows
    n_rows = np.arange(g_row, prn_row)  # nasion: the deepest point from the glabella down to the tip
    n_row = n_rows[np.argmin(mid[n_rows, 2])]
    sn_rows = np.nonzero((mid[:, 1] > mid[prn_row, 1]) & (mid[:, 1] < lm[51, 1]))[0]  # tip to upper lip
    sn_row = sn_rows[np.argmin(mid[sn_rows, 2])]
    # Alare: at the height half-way from prn to sn, the outer edge of each nostril wing: where the
    # surface beside the nose falls away fastest toward the cheek (its steepest point).
    al_row = int(np.argmin(np.abs(mid[:, 1] - (mid[prn_row, 1] + mid[sn_row, 1]) / 2)))
    side = rows[al_row]
    al = []
    for sign in (-1, 1):
        near = np.nonzero((sign * side[:, 0] > 8) & (sign * side[:, 0] < 30))[0]
        near = near[np.argsort(sign * side[near, 0])]  # outward from the nose
        slope = -np.diff(side[near, 2]) / np.diff(sign * side[near, 0])
        k = int(np.argmax(slope))
        al.append((side[near[k]] + side[near[k + 1]]) / 2)
    # Gnathion: below the chin's most forward point (pogonion), where the profile turns under the
    # jaw at 45 degrees (the classic construction between the facial and mandibular planes).
    chin = np.nonzero(mid[:, 1] > lm[57, 1] + 12)[0]
    pg_row = chin[np.argmax(mid[chin, 2])]
    below = np.arange(pg_row, len(mid) - 1)
    slope = -np.diff(mid[pg_row:, 2]) / np.maximum(np.diff(mid[pg_row:, 1]), 1e-6)  # backward per mm down
    gn_row = below[np.argmax(slope >= 1.0)] if (slope >= 1.0).any() else len(mid) - 1
    t_row = int(np.argmin(np.abs(rows[:, 0, 1] - TRAGION_Y)))
    tragion = np.stack([rows[t_row, 0], rows[t_row, -1]])
    band = (np.abs(v[:, 1] - 12.0) < 12.0) & (v[:, 2] > tragion[:, 2].mean() + ZYGION_FRONT)
    zy = np.stack([v[band][np.argmin(v[band, 0])], v[band][np.argmax(v[band, 0])]])
    return {"ex": lm[[36, 45]], "en": lm[[39, 42]], "ch": lm[[48, 54]], "go": lm[[4, 12]], "ls": lm[51],
            "li": lm[57], "sto": (lm[62] + lm[66]) / 2, "gn": mid[gn_row], "n": mid[n_row], "prn": mid[prn_row],
            "sn": mid[sn_row], "al": np.stack(al), "t": tragion, "zy": zy}


def measure(vertices, model) -> dict:
    """Every measurement of NORMS on one mesh -> dict name -> mm. Distances between a bilateral
    landmark and a midline one use the subject's right side, as 3DFN's depths do (t: right ear)."""
    p = landmarks(vertices, model)

    def point(name, k=0):
        return p[name][k] if p[name].ndim == 2 else p[name]

    out = {}
    for name in NORMS:
        a, b = name.split("-")
        if a == b:  # a bilateral width: right to left
            out[name] = float(np.linalg.norm(p[a][0] - p[a][1]))
        elif name == "en-ex":
            out[name] = float(np.linalg.norm(p["en"][0] - p["ex"][0]))
        else:
            out[name] = float(np.linalg.norm(point(a) - point(b)))
    return out


def survey(n: int = 1000, *, seed: int = 0, model=None):
    """Measure ``n`` random neutral SynthFaces identities -> DataFrame (one row per face: sex, then
    one column per measurement)."""
    import pandas as pd

    from .model import FaceModel

    model = model or FaceModel.default()
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        identity = model.sample_identity(rng)
        rows.append(dict(sex=model.sex_of(identity), **measure(model.vertices(identity), model)))
    return pd.DataFrame(rows)


def compare(faces) -> "pandas.DataFrame":
    """A survey (:func:`survey`) against NORMS -> one row per measurement and sex: published mean
    and SD, SynthFaces mean and SD, the difference in published SDs, and whether it is within one."""
    import pandas as pd

    rows = []
    for name, (what, male, female) in NORMS.items():
        for sex, (mean, sd) in (("male", male), ("female", female)):
            x = faces.loc[faces["sex"] == sex, name]
            rows.append(dict(measurement=name, what=what, sex=sex, published_mean=mean, published_sd=sd,
                             synth_mean=x.mean(), synth_sd=x.std(), z=(x.mean() - mean) / sd,
                             within_1sd=bool(abs(x.mean() - mean) <= sd)))
    return pd.DataFrame(rows)
