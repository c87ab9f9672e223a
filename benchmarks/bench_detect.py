"""Face detection and landmarks on synthetic faces in photo-like backgrounds, by yaw.

SynthFaces test faces (synth-aflw2000, paper size: 192x192 crops, faces ~90 px across) are
pasted into 640x480 backgrounds made from scikit-image's bundled pictures, so every face's 68
landmarks are known. For yaw bins 0-30, 30-60 and 60-90 deg it prints the detection rate and
the landmark error (mean px, and NME: mean error / sqrt(w * h) of the true landmark box) of
HOG alone and of "auto" (HOG, then the CNN where HOG finds nothing), and the milliseconds per
photo of each stage. A face counts as found when a detected box's centre lies in its true
landmark box.

References (issue): HOG on the astronaut 19 ms (upsample 0) / 84 ms (upsample 1); the 68-point
predictor 0.7 ms per face; HOG finds ~78% of near-frontal synthetic faces.
Run: python benchmarks/bench_detect.py [--n 20] [--upsample 1]   (~1.5 min on 2 cores)
"""
import argparse
import time

import numpy as np

from vrnkit import detect
from vrnkit.config import VolumeSpec
from vrnkit.photo import background_photo, paste_image
from vrnkit.synthfaces.dataset import make_sample

BINS = ((0, 30), (30, 60), (60, 90))
STAGES = ("hog", "cnn", "landmarks")
REFERENCE_MS = {"hog": "19 (up 0) / 84 (up 1), astronaut", "landmarks": "0.7 per face"}


def pick_samples(n: int) -> dict:
    """The first n synth-aflw2000 indices in each yaw bin (by |yaw| from the metadata)."""
    quick = VolumeSpec.preset("cpu")  # the pose does not depend on the preset; quick is faster
    chosen = {b: [] for b in BINS}
    index = 0
    while any(len(v) < n for v in chosen.values()):
        yaw = abs(make_sample("synth-aflw2000", index, spec=quick)[1]["yaw"])
        for lo, hi in BINS:
            if lo <= yaw < hi and len(chosen[(lo, hi)]) < n:
                chosen[(lo, hi)].append(index)
        index += 1
    return chosen


def synthetic_photo(index: int):
    """Face ``index`` pasted at a position set by its index: (photo (480, 640, 3), truth (68, 2))."""
    sample, _ = make_sample("synth-aflw2000", index, spec=VolumeSpec.preset("paper"))
    xy = (37 * index % (640 - 192), 53 * index % (480 - 192))
    photo, lm = paste_image(background_photo(index), sample["image"], xy=xy, landmarks=sample["landmarks"])
    return photo, lm[:, :2]


def score(faces, truth) -> tuple[bool, float, float]:
    """(found, mean error px, NME) of the first face whose box centre lies in the truth's box."""
    lo, hi = truth.min(0), truth.max(0)
    for f in faces:
        centre = np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2])
        if np.all(centre > lo) and np.all(centre < hi):
            err = float(np.linalg.norm(f.landmarks - truth, axis=1).mean())
            return True, err, err / float(np.sqrt(np.prod(hi - lo)))
    return False, np.nan, np.nan


def astronaut_ms(repeats: int = 10) -> dict:
    """Milliseconds on the astronaut (512x512), the references' photo: HOG at upsample 0 and 1,
    the CNN, and the predictor."""
    import skimage.data

    image = skimage.data.astronaut()
    box = detect.detect_faces(image, detector="hog")[0].box

    def ms(func, n=repeats):
        start = time.perf_counter()
        for _ in range(n):
            func()
        return (time.perf_counter() - start) / n * 1000

    return {"hog up 0": ms(lambda: detect._run_hog(image, 0)), "hog up 1": ms(lambda: detect._run_hog(image, 1)),
            "cnn": ms(lambda: detect._run_cnn(image), 2), "landmarks": ms(lambda: detect.predict_landmarks(image, box), 100)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20, help="faces per yaw bin")
    parser.add_argument("--upsample", type=int, default=1, help="HOG upsampling (detect_faces' default: 1)")
    args = parser.parse_args()

    ref = astronaut_ms()  # also loads the models, so their loading is not timed below
    start = time.perf_counter()
    chosen = pick_samples(args.n)
    rows, timings, n_faces = [], {"hog": {}, "auto": {}}, {"hog": 0, "auto": 0}
    for (lo, hi), indices in chosen.items():
        results = {"hog": [], "auto": []}
        for i in indices:
            photo, truth = synthetic_photo(i)
            for det in results:
                faces = detect.detect_faces(photo, detector=det, upsample=args.upsample, timings=timings[det])
                results[det].append(score(faces, truth) + (any(f.detector == "cnn" for f in faces),))
                n_faces[det] += len(faces)
        rows.append(((lo, hi), {det: np.array(r, float) for det, r in results.items()}))
    n_photos = 3 * args.n

    print(f"Face detection on {args.n} synthetic faces per yaw bin in 640x480 photos (faces ~90 px; "
          f"HOG upsample {args.upsample}); {time.perf_counter() - start:.0f} s")
    print(f"{'yaw':>7s} | {'HOG: found':>10s} {'err px':>7s} {'NME %':>6s} | {'auto: found':>11s} "
          f"{'err px':>7s} {'NME %':>6s} {'by CNN':>6s} | reference")
    for (lo, hi), r in rows:
        cells = []
        for det, width in (("hog", 10), ("auto", 11)):
            found, err, nme, _ = r[det].T
            cells.append(f"{found.mean():{width}.0%} {np.nanmean(err):7.2f} {np.nanmean(nme) * 100:6.2f}")
        note = "HOG ~78% near-frontal" if lo == 0 else ""
        print(f"{lo:3d}-{hi:<3d} | {cells[0]} | {cells[1]} {int(r['auto'][:, 3].sum()):6d} | {note}")
    print("\nMilliseconds per photo (640x480; landmarks: per face), by stage, and on the astronaut (512x512):")
    print(f"{'stage':>10s} | {'HOG only':>9s} | {'auto':>9s} | {'astronaut':>22s} | reference")
    for stage in STAGES:
        per = n_faces if stage == "landmarks" else {"hog": n_photos, "auto": n_photos}
        per_photo = [timings[det].get(stage, 0.0) / max(per[det], 1) * 1000 for det in ("hog", "auto")]
        if stage == "hog":
            astro = f"{ref['hog up 0']:.0f} (up 0) / {ref['hog up 1']:.0f} (up 1)"
        else:
            astro = f"{ref[stage]:.1f} per face" if stage == "landmarks" else f"{ref[stage]:.0f}"
        print(f"{stage:>10s} | {per_photo[0]:9.1f} | {per_photo[1]:9.1f} | {astro:>22s} | {REFERENCE_MS.get(stage, '')}")
    print("(cnn runs in auto only on photos where HOG found nothing; its ms are averaged over all photos)")


if __name__ == "__main__":
    main()
