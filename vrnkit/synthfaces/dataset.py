"""SynthFaces datasets: vrnkit's embedded default, generated from a seed in seconds.

Four protocols, named as synthetic analogues of the paper's sets:

    synth-300wlp     training faces: random identities and expressions, yaw up to +-90 deg
    synth-aflw2000   2000 test faces: identities never used in training, clutter and occluders
    synth-bu4dfe     held-out identities x 6 expressions x 3 pitches x 7 yaws, strong lighting
    synth-florence   held-out identities, neutral, pitch -15 / 20 / 25 deg x 5 yaws

Every sample is a pure function of (seed, protocol, index), so a dataset is reproducible byte
for byte, and an interrupted generation resumes by skipping the shards already written.
Identities are numbered; training identities and test identities come from disjoint ranges.

>>> from vrnkit.config import VolumeSpec
>>> sample, meta = make_sample("synth-florence", 0, spec=VolumeSpec.preset("cpu"))
>>> sample["image"].shape, meta["expression"], meta["pitch"]
((64, 64, 3), 'neutral', -15.0)
"""
from __future__ import annotations

import functools
import shlex
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import SEED, VOLUME_PRESETS, VolumeSpec
from ..files import check_number
from ..datasets.shards import (FORMAT_VERSION, claim_folder, ignore_ctrl_c, shard_is_complete, shard_path, write_index,
                     write_shard)

BASIC_EXPRESSIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
TEST_IDENTITY_BASE = 1_000_000  # identity numbers >= this are never used for training


@dataclass(frozen=True)
class Protocol:
    """How one SynthFaces set draws its faces."""

    name: str
    split: str  # "train" or "test"
    default_size: int  # number of samples when --n is not given (full mode)
    max_yaw: float = 90.0  # degrees, for randomly posed sets
    clutter: bool = True  # background clutter
    occluders: bool = False  # random occluders in front of the face
    lighting: str = "normal"  # "normal" or "strong"
    store_vertices: bool = False  # keep the ground truth's face region in the sample (test sets)
    grid: tuple = ()  # fixed (expression, pitch, yaw) combinations cycled per identity


def _grid(expressions, pitches, yaws):
    return tuple((e, float(p), float(y)) for e in expressions for p in pitches for y in yaws)


PROTOCOLS = {
    "synth-300wlp": Protocol("synth-300wlp", "train", 61_225),
    "synth-aflw2000": Protocol("synth-aflw2000", "test", 2000, occluders=True, store_vertices=True),
    "synth-bu4dfe": Protocol("synth-bu4dfe", "test", 20 * 126, lighting="strong", store_vertices=True,
                             grid=_grid(BASIC_EXPRESSIONS, (-20, 0, 20), np.linspace(-80, 80, 7))),
    "synth-florence": Protocol("synth-florence", "test", 20 * 15, clutter=True, store_vertices=True,
                               grid=_grid(("neutral",), (-15, 20, 25), np.linspace(-80, 80, 5))),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown SynthFaces protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None


def _protocol_code(name: str) -> int:
    return zlib.crc32(name.encode())  # stable across runs and machines (unlike hash())


def make_sample(protocol: str, index: int, *, spec: VolumeSpec, seed: int = SEED,
                sparse: bool = False) -> tuple[dict, dict]:
    """Sample ``index`` of a protocol -> (sample dict in the shard format, metadata row).

    ``sparse``: also keep ``sparse_vertices`` (591, 3), the face's sparse mesh in crop pixels
    (``FaceModel.sparse_region``): the target of direct vertex regression (``--model direct``).
    """
    from .model import EXPRESSIONS, FaceModel
    from .render import random_pose, render_face
    from ..voxel import slab_from_model

    p = get_protocol(protocol)
    model = FaceModel.default()
    rng = np.random.default_rng([seed, _protocol_code(protocol), index])
    if p.grid:
        identity_no = TEST_IDENTITY_BASE + _protocol_code(protocol) % 1000 * 1000 + index // len(p.grid)
        label, pitch, yaw = p.grid[index % len(p.grid)]
        roll = float(rng.uniform(-5, 5))
        expression = np.asarray(EXPRESSIONS[label], np.float64)
    else:
        identity_no = (TEST_IDENTITY_BASE + _protocol_code(protocol) % 1000 * 1000 + index
                       if p.split == "test" else index)
        label = str(rng.choice(("neutral",) + BASIC_EXPRESSIONS + ("random",)))
        expression = model.sample_expression(rng, label=None if label == "random" else label)
        yaw, pitch, roll = (float(a) for a in np.degrees(random_pose(rng, max_yaw=np.radians(p.max_yaw))))
    identity = model.sample_identity(np.random.default_rng([seed, identity_no]))
    r = render_face(model, identity, expression, yaw=np.radians(yaw), pitch=np.radians(pitch),
                    roll=np.radians(roll), spec=spec, rng=rng, clutter=p.clutter,
                    occluders=p.occluders, lighting=p.lighting)
    slab = slab_from_model(r["model_vertices"], _slab_faces(), r["affine"], grid_shape=(spec.height, spec.width))
    sample = dict(image=r["image"], landmarks=np.asarray(r["landmarks"], np.float32), front=slab.front,
                  mask=slab.mask, back=np.float32(slab.back), affine=slab.affine,
                  frame=r["frame"].to_array())
    if p.store_vertices:
        sample["vertices"] = np.asarray(r["vertices"][model.face_region], np.float32)
    if sparse:
        sample["sparse_vertices"] = np.asarray(r["vertices"][model.sparse_region], np.float32)
    meta = dict(id=f"{protocol}-{index:07d}", split=p.split, source="synth", identity=int(identity_no),
                expression=label, yaw=round(yaw, 3), pitch=round(pitch, 3), roll=round(roll, 3))
    return sample, meta


@functools.lru_cache(maxsize=1)
def _slab_faces() -> np.ndarray:
    """Triangles for the slab's front surface: the coarser mesh (every 2nd row and column)
    is cheaper to rasterise, and its volume agrees with the full mesh's to IoU 0.998 at
    192x192x200 (0.25 slices of front depth on average). Built once (read-only: it is shared)."""
    from .mesh import grid_faces

    faces = grid_faces(2)
    faces.flags.writeable = False
    return faces


def _make_shard(job) -> str:
    protocol, number, start, stop, spec_dict, seed, root, sparse = job
    spec = VolumeSpec(**spec_dict)
    pairs = [make_sample(protocol, i, spec=spec, seed=seed, sparse=sparse) for i in range(start, stop)]
    return str(write_shard(root, number, [s for s, _ in pairs], [m for _, m in pairs]))


def check_generate_args(n, seed, shard_size, workers) -> None:
    """Raise ValueError naming the first bad argument of generate() and its allowed range."""
    check_number(n, "n (--n), the number of samples,", low=1, integer=True)
    check_number(seed, "seed (--seed)", low=0, high=2**32 - 1, integer=True)
    check_number(shard_size, "shard_size (--shard-size)", low=1, high=100_000, integer=True)
    check_number(workers, "workers (--workers)", low=1, high=1024, integer=True)


# Bumped whenever the same (protocol, seed, index) would give other pixels or labels (the face model,
# the renderer): a folder made by an older SynthFaces is then refused, not resumed into a mix of both.
# 1 (no key): the first SynthFaces; 2: acted-strength expressions; 3: the appearance made for
# real-face detectors (synthfaces.texture and synthfaces.scene, lights with soft shadows); 4: jaw
# landmarks on the outline as in the iBUG markup, backgrounds out of focus, in-camera sharpening,
# the near ear in front of the face, a fuller neck.
GENERATOR_VERSION = 4


def generate(protocol: str, out, *, n: int | None = None, spec: VolumeSpec | None = None,
             seed: int = SEED, shard_size: int = 256, workers: int = 2, progress: bool = True,
             force: bool = False, sparse: bool = False):
    """Write ``n`` samples of ``protocol`` to folder ``out`` as shards plus index.csv; resumable.

    ``sparse``: every sample also keeps its sparse mesh (see :func:`make_sample`; ``--vertices``).

    Returns the index table (pandas). A folder that holds another dataset (another protocol,
    size, seed, volume preset, or a converted one), or shards that no manifest describes, is
    refused rather than mixed; ``force=True`` deletes that dataset first (--force).
    """
    from tqdm.auto import tqdm

    p = get_protocol(protocol)
    spec = spec or VolumeSpec.preset("cpu")
    n = p.default_size if n is None else n
    check_generate_args(n, seed, shard_size, workers)
    n, seed, shard_size, workers = int(n), int(seed), int(shard_size), int(workers)
    out = Path(out)
    preset = next((k for k, v in VOLUME_PRESETS.items() if v == spec), None)
    command = shlex.join(["vrnkit", "synth", "--protocol", protocol, "--n", str(n), "--seed", str(seed),
                          "--shard-size", str(shard_size), *(["--preset", preset] if preset else []),
                          *(["--vertices"] if sparse else []), "--out", str(out)])
    manifest = dict(kind="synth", protocol=protocol, n=n, seed=seed, shard_size=shard_size, spec=asdict(spec),
                    preset=preset, format_version=FORMAT_VERSION, generator_version=GENERATOR_VERSION, samples=n,
                    shards=len(range(0, n, shard_size)), command=command)
    if sparse:  # only then, so that the folders made before this option still match their settings
        manifest["sparse_vertices"] = True
    claim_folder(out, manifest, force=force)

    jobs = []
    for number, start in enumerate(range(0, n, shard_size)):
        stop = min(start + shard_size, n)
        if not shard_is_complete(shard_path(out, number), [f"{protocol}-{i:07d}" for i in range(start, stop)]):
            jobs.append((protocol, number, start, stop, asdict(spec), seed, str(out), sparse))
    bar = tqdm(total=len(jobs), desc=f"{protocol} shards", unit="shard", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        # Build the face model and the renderer's caches once, before forking, so the workers
        # inherit them instead of each building its own.
        make_sample(protocol, 0, spec=spec, seed=seed, sparse=sparse)

        # fork on Linux (fast start, nothing to re-import); spawn where fork is unavailable.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(min(workers, len(jobs)), initializer=ignore_ctrl_c) as pool:
            for _ in pool.imap_unordered(_make_shard, jobs):
                bar.update()
    else:
        for job in jobs:
            _make_shard(job)
            bar.update()
    bar.close()
    return write_index(out)
