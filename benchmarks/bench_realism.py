"""How real SynthFaces look to a detector trained only on real faces: dlib's HOG face detector and
its 68-point predictor on the first 300 paper-size synth-aflw2000 test faces.

Each face (a 192x192 crop, the face about 90 px across) is pasted at its own size into a 320x320
photo-like background (vrnkit.photo.background_photo). A face counts as found when a detected
box's centre lies in its true landmark box; NME is dlib's mean landmark error over sqrt(w * h) of
the true landmark box (the AFLW2000-3D protocol). Printed per |yaw| bin beside the goals of the
SynthFaces-realism issue (>= 90 % found and NME <= 4.5 % below 30 deg; >= 60 % found at 30-60
deg) and the reference measured before it (78 % found, NME 4.7 % below 30 deg; 33 % at 30-60).

Measured (2 CPU cores, 26 s): SynthFaces before their anthropometric calibration 79 % found, NME
4.7 % below 30 deg, 32 % at 30-60; after it 67 %, NME 5.7 %, and 20 %. The faces got the right
proportions and lost some of their likeness to dlib's idea of a face (see the issue's closing note).
With acted-strength expressions 69 %, NME 5.8 %, and 16 %.

With the appearance of synthfaces.texture and synthfaces.scene (brows, lashes and lid creases,
shaded eyes, lips, skin detail, facial hair; hair styles, glasses, hats, hands and objects; a key
light near the camera with soft shadows, fill, ambient occlusion, auto exposure; 30 s):

    |yaw|   found   NME      (before: found, NME)
    0-30     93 %   4.66 %   (69 %, 5.79 %)
    30-60    50 %   7.77 %   (16 %, 9.94 %)
    60-90     2 %      -     ( 0 %, -)

The found goal below 30 deg was met; NME was not: dlib's jaw line sat 5 % of the face above
SynthFaces' (jaw error 9 %, half the total). Generator version 4 fixed the cause in the landmarks,
not the look: the jaw line started 10 mm low (iBUG-68's point 0 is on the outline at the height
of the outer eye corners); the nose tip and the inner lip corners moved to the markup's places.
At 30-60 deg the face region's edge against the head made no difference; backgrounds out of
focus (as a camera focused on the face has them), in-camera sharpening and the near ear drawn in
front of the face did (50 % -> 62 %):

    |yaw|   found   NME      (version 3: found, NME)
    0-30     94 %   4.32 %   (93 %, 4.66 %)
    30-60    62 %   7.96 %   (50 %, 7.77 %)    30-40: 85 %, 40-50: 73 %, 50-60: 32 %
    60-90     3 %      -     ( 2 %, -)

The 30-60 bin holds 104 faces: two fewer found would miss the goal. Over the first 900 faces
(279 at 30-60 deg) it reads 60 % (54 % before the version-4 look). What still costs detections
there: the same faces pasted on flat grey with no head are found 78 % of the time, so it is the
backgrounds' clutter and the occluders (over a quarter of the test faces), not the face.

Run: python benchmarks/bench_realism.py [--n 300]   (about 1 minute on 2 cores)
"""
import argparse

import numpy as np

from vrnkit.config import VolumeSpec
from vrnkit.detect import detect_faces
from vrnkit.photo import background_photo, paste_image
from vrnkit.synthfaces.dataset import make_sample

BINS = ((0, 30), (30, 60), (60, 90))
GOALS = {(0, 30): ">= 90 %, NME <= 4.5 %", (30, 60): ">= 60 %", (60, 90): "-"}
REFERENCE = {(0, 30): "78 %, NME 4.7 %", (30, 60): "33 %, NME 6.9 %", (60, 90): "-"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=300, help="test faces (default 300)")
    args = p.parse_args()
    spec = VolumeSpec.preset("paper")
    rows = []
    for index in range(args.n):
        sample, meta = make_sample("synth-aflw2000", index, spec=spec)
        photo, truth = paste_image(background_photo(index, size=(320, 320)), sample["image"], xy=(64, 64),
                                   scale=1.0, landmarks=sample["landmarks"])
        truth = truth[:, :2]
        lo, hi = truth.min(0), truth.max(0)
        found = [f for f in detect_faces(photo, detector="hog")
                 if np.all(lo <= np.asarray(f.box[:2]) / 2 + np.asarray(f.box[2:]) / 2)
                 and np.all(np.asarray(f.box[:2]) / 2 + np.asarray(f.box[2:]) / 2 <= hi)]
        nme = (np.linalg.norm(found[0].landmarks[:, :2] - truth, axis=1).mean() / np.sqrt(np.prod(hi - lo))
               if found else np.nan)
        rows.append((abs(meta["yaw"]), bool(found), nme))
    yaw, hit, nme = (np.array(c, dtype=float) for c in zip(*rows))
    print(f"dlib HOG + 68-point predictor on {args.n} paper-size synth-aflw2000 faces")
    print(f"{'|yaw|':>7s} {'faces':>6s} {'found':>7s} {'NME':>7s} | {'goal':24s} | reference (before)")
    for b in BINS:
        sel = (yaw >= b[0]) & (yaw < b[1])
        if not sel.any():
            continue
        rate = hit[sel].mean()
        err = np.nanmean(nme[sel]) * 100 if hit[sel].any() else float("nan")
        print(f"{b[0]:3d}-{b[1]:<3d} {int(sel.sum()):6d} {rate:7.0%} {err:6.2f}% | {GOALS[b]:24s} | {REFERENCE[b]}")


if __name__ == "__main__":
    main()
