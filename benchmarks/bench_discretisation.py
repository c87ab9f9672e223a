"""Discretisation error: how far voxelising a face and taking its 0.5 iso-surface back moves it.

Run:  python benchmarks/bench_discretisation.py [--face both|ellipsoid|synthetic]

The paper (Jackson et al. 2017) chose a 192 x 192 x 200 volume and states that its
discretisation error is negligible. This prints, per resolution, the mean / max distance from the
original vertices to the recovered surface (crop pixels) and the mean normalised by the 3D outer
interocular distance, the same normaliser as the NME (VRN's NME on AFLW2000-3D: 0.0676).

The face is scaled with the crop (the paper's 90 px face at 192 px), so every resolution sees
the same face on a finer or coarser grid. "ellipsoid": a closed, face-sized ellipsoid (icosphere)
with landmark-like outer eye corners, voxelised by even-odd fill. "synthetic": the mean face of
vrnkit.synthfaces.model (an open surface, filled from its front back to a flat back, like VRN's targets);
its error is also given over the NME's face region. Default: both.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vrnkit.config import VolumeSpec  # noqa: E402
from vrnkit.geometry import OUTER_EYE_CORNERS, CropFrame  # noqa: E402
from vrnkit.surface import discretisation_error  # noqa: E402

PAPER_NME_VRN = 0.0676  # VRN on AFLW2000-3D (the paper's Table 1), for scale
SIZES = (48, 64, 96, 128, 192)


def spec_for(n: int) -> VolumeSpec:
    """Paper proportions at crop size n: the paper preset at 192, the cpu preset at 64."""
    if n == 192:
        return VolumeSpec.preset("paper")
    if n == 64:
        return VolumeSpec.preset("cpu")
    return VolumeSpec(depth=int(round(n * 200 / 192)), height=n, width=n, depth_scale=2.0,
                      face_size=90.0 * n / 192)


def ellipsoid_face(spec: VolumeSpec):
    """Closed face-sized ellipsoid, even-odd fill.

    Returns (vertices in crop coordinates, faces, landmarks (68, 3), fill, back, region=None).
    """
    import trimesh

    k = spec.width / 192.0
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 10242 vertices
    axes = np.array([50.0, 62.0, 36.0]) * k  # half-width, half-height, half-depth in crop px
    centre = np.array([spec.width / 2, spec.height / 2, spec.depth_span / 2])
    v = sphere.vertices * axes + centre
    lm = np.tile(centre, (68, 1))
    for i, sx in zip(OUTER_EYE_CORNERS, (-1, 1)):  # outer eye corners on the surface, above centre
        x, y = sx * 0.48, -0.18
        lm[i] = centre + axes * [x, y, np.sqrt(1 - x * x - y * y)]
    return v, sphere.faces, lm, "even-odd", None, None


def synthetic_face(spec: VolumeSpec):
    """Synthetic face (vrnkit.synthfaces.model, mean identity), front fill to a flat back.

    Posed frontally in the crop by the paper's crop rule; filled from its front surface back to
    its deepest point. Returns (vertices, faces, landmark indices (68,), fill, back, face region).
    """
    from vrnkit.synthfaces.model import FaceModel

    model = FaceModel.default()
    v = np.asarray(model.vertices(), np.float64)
    faces = np.asarray(model.faces)
    lm_idx = np.asarray(model.landmarks)
    frame = CropFrame.from_landmarks(v[lm_idx], size=spec.width, face_size=spec.face_size,
                                     depth_span=spec.depth_span)
    v = frame.photo_to_crop(v)
    return v, faces, lm_idx, "front", float(v[:, 2].min()), model.face_region


def run(make):
    print(f"face: {make.__doc__.strip().splitlines()[0]}")
    for n in SIZES:
        spec = spec_for(n)
        v, f, lm, fill, back, region = make(spec)
        t0 = time.perf_counter()
        e = discretisation_error(v, f, spec, fill=fill, back=back, landmarks=lm)
        dt = time.perf_counter() - t0
        label = f"{spec.width}x{spec.height}x{spec.depth}"
        line = (f"{label:>12}: mean {e['mean']:.3f} px, max {e['max']:.3f} px, interocular {e['interocular']:.1f} px, "
                f"normalised mean {e['mean_normalised']:.4f} ({e['mean_normalised'] / PAPER_NME_VRN:.1%} of VRN's "
                f"NME {PAPER_NME_VRN})")
        if region is not None:  # the NME's face region (hidden parts such as the mouth slit excluded)
            d = e["distances"][region]
            line += f"; face region: mean {d.mean():.3f} px, max {d.max():.3f} px, normalised {d.mean() / e['interocular']:.4f}"
        print(f"{line} [{dt:.2f} s]")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", choices=("both", "ellipsoid", "synthetic"), default="both")
    args = ap.parse_args(argv)
    if args.face in ("both", "ellipsoid"):
        run(ellipsoid_face)
    if args.face in ("both", "synthetic"):
        try:
            synthetic_face(spec_for(48))
        except (ImportError, AttributeError, TypeError) as e:  # the face model missing or a different API
            print(f"synthetic face unavailable ({type(e).__name__}: {e})")
        else:
            run(synthetic_face)
    print("reference: the paper states the discretisation error at 192x192x200 is negligible")


if __name__ == "__main__":
    main()
