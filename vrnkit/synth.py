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
>>> sample, meta = make_sample("synth-florence", 0, spec=VolumeSpec.preset("quick"))
>>> sample["image"].shape, meta["expression"], meta["pitch"]
((64, 64, 3), 'neutral', -15.0)
"""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .config import SEED, VolumeSpec
from .files import atomic_write
from .shards import (FORMAT_VERSION, list_shards, read_shard, shard_path, write_index,
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
    store_vertices: bool = False  # keep the ground-truth mesh in the sample (test sets)
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


def make_sample(protocol: str, index: int, *, spec: VolumeSpec, seed: int = SEED) -> tuple[dict, dict]:
    """Sample ``index`` of a protocol -> (sample dict in the shard format, metadata row)."""
    from .facegen import EXPRESSIONS, FaceModel
    from .render import render_face
    from .voxel import slab_from_model

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
        yaw = float(rng.uniform(-p.max_yaw, p.max_yaw))
        pitch = float(np.clip(rng.normal(0, 12), -35, 35))
        roll = float(np.clip(rng.normal(0, 8), -30, 30))
    identity = model.sample_identity(np.random.default_rng([seed, identity_no]))
    r = render_face(model, identity, expression, yaw=np.radians(yaw), pitch=np.radians(pitch),
                    roll=np.radians(roll), spec=spec, rng=rng, clutter=p.clutter,
                    occluders=p.occluders, lighting=p.lighting)
    frontal = model.vertices(identity, expression)
    slab = slab_from_model(frontal, _slab_faces(), r["affine"], grid_shape=(spec.height, spec.width))
    sample = dict(image=r["image"], landmarks=np.asarray(r["landmarks"], np.float32), front=slab.front,
                  mask=slab.mask, back=np.float32(slab.back), affine=slab.affine,
                  frame=r["frame"].to_array())
    if p.store_vertices:
        sample["vertices"] = np.asarray(r["vertices"], np.float32)
    meta = dict(id=f"{protocol}-{index:07d}", split=p.split, source="synth", identity=int(identity_no),
                expression=label, yaw=round(yaw, 3), pitch=round(pitch, 3), roll=round(roll, 3))
    return sample, meta


def _slab_faces() -> np.ndarray:
    """Triangles for the slab's front surface: the coarser mesh (every 2nd row and column)
    is cheaper to rasterise, and its volume agrees with the full mesh's to IoU 0.998 at
    192x192x200 (0.25 slices of front depth on average)."""
    from .facemesh import grid_faces

    return grid_faces(2)


def _make_shard(job) -> str:
    protocol, number, start, stop, spec_dict, seed, root = job
    spec = VolumeSpec(**spec_dict)
    pairs = [make_sample(protocol, i, spec=spec, seed=seed) for i in range(start, stop)]
    return str(write_shard(root, number, [s for s, _ in pairs], [m for _, m in pairs]))


def generate(protocol: str, out, *, n: int | None = None, spec: VolumeSpec | None = None,
             seed: int = SEED, shard_size: int = 256, workers: int = 2, progress: bool = True):
    """Write ``n`` samples of ``protocol`` to folder ``out`` as shards plus index.csv; resumable.

    Returns the index table (pandas). A folder that holds another protocol, size, seed or volume
    preset is refused rather than mixed.
    """
    from tqdm.auto import tqdm

    p = get_protocol(protocol)
    spec = spec or VolumeSpec.preset("quick")
    n = p.default_size if n is None else int(n)
    if n <= 0:
        raise ValueError(f"n must be a positive number of samples; got {n}")
    out = Path(out)
    manifest = dict(protocol=protocol, n=n, seed=seed, shard_size=shard_size, spec=asdict(spec),
                    format_version=FORMAT_VERSION)
    mpath = out / "dataset.json"
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if old != manifest:
            raise ValueError(f"{out} already holds a different dataset ({old}); choose another --out or delete it")
    else:
        atomic_write(mpath, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))

    jobs = []
    have = {s.name for s in list_shards(out)}
    for number, start in enumerate(range(0, n, shard_size)):
        path = shard_path(out, number)
        if path.name in have and _shard_ok(path, min(shard_size, n - start)):
            continue
        jobs.append((protocol, number, start, min(start + shard_size, n), asdict(spec), seed, str(out)))
    bar = tqdm(total=len(jobs), desc=f"{protocol} shards", unit="shard", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        # Build the face model and the renderer's caches once, before forking, so the workers
        # inherit them instead of each building its own.
        make_sample(protocol, 0, spec=spec, seed=seed)

        # fork on Linux (fast start, nothing to re-import); spawn where fork is unavailable.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for _ in pool.imap_unordered(_make_shard, jobs):
                bar.update()
    else:
        for job in jobs:
            _make_shard(job)
            bar.update()
    bar.close()
    return write_index(out)


def _shard_ok(path, expected: int) -> bool:
    try:
        arrays, meta = read_shard(path)
    except ValueError:
        return False  # corrupt or old: regenerate it
    return len(meta) == expected


def add_cli(sub) -> None:
    p = sub.add_parser("synth", help="generate a SynthFaces dataset (shards + index.csv); resumable")
    p.add_argument("--protocol", default="synth-300wlp", choices=sorted(PROTOCOLS))
    p.add_argument("--out", default=None, help="output folder (default: data/<protocol>)")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: the protocol's size)")
    p.add_argument("--preset", default=None, choices=["quick", "paper"], help="volume preset (default: from VRNKIT_MODE)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--shard-size", type=int, default=256)
    p.set_defaults(func=_cli)


def _cli(args) -> None:
    from .config import volume_spec_for_mode

    spec = VolumeSpec.preset(args.preset) if args.preset else volume_spec_for_mode()
    out = args.out or f"data/{args.protocol}"
    df = generate(args.protocol, out, n=args.n, spec=spec, seed=args.seed, shard_size=args.shard_size,
                  workers=args.workers)
    print(f"{len(df)} samples of {args.protocol} in {out} (index: {Path(out) / 'index.csv'})")
