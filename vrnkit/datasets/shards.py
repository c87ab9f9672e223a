"""The sample format shared by every dataset, and the shard files that hold it.

A sample is a dict of NumPy arrays, the same for SynthFaces, 300W-LP, AFLW2000-3D and your
own scans (S = crop size, Hc x Wc = canonical slab grid, here Hc = Wc = S):

    image       (S, S, 3) uint8     the crop the network sees
    landmarks   (68, 3) float32     crop coordinates (x, y in pixels, z in crop pixels)
    front       (Hc, Wc) float32    slab front depth (stored as float16: 0.06 px at 100 px)
    mask        (Hc, Wc) bool       slab mask
    back        () float32          slab flat-back depth
    affine      (3, 4) float32      slab canonical -> crop
    frame       (4,) float64        CropFrame [scale, tx, ty, tz], photo -> crop
    vertices    (K, 3) float32      optional (test sets): the ground truth's face region (the
                                    vertices the NME is measured on) in crop coordinates

plus metadata (one row of the index table): id, split, source, identity, expression, yaw,
pitch, roll (degrees). A dataset folder holds ``shard-00000.npz, shard-00001.npz, ...`` (stacked
arrays of up to ``shard_size`` samples, the format version and the rows' metadata) and
``index.csv``, rebuilt from the shards so that pandas can read it, and a manifest that says
what made the folder (see :func:`claim_folder`). Every file is written to a temporary name and
renamed, so an interrupted job leaves only whole shards behind and can resume by skipping them.

>>> import tempfile, numpy as np
>>> root = tempfile.mkdtemp()
>>> s = dict(image=np.zeros((4, 4, 3), np.uint8), landmarks=np.zeros((68, 3), np.float32),
...          front=np.zeros((4, 4), np.float32), mask=np.ones((4, 4), bool), back=np.float32(-1),
...          affine=np.eye(3, 4, dtype=np.float32), frame=np.array([1.0, 0, 0, 0]))
>>> path = write_shard(root, 0, [s], [dict(id="a", split="train")])
>>> arrays, meta = read_shard(path)
>>> arrays["image"].shape, meta[0]["id"]
((1, 4, 4, 3), 'a')
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ..files import atomic_write, check_out_folder, remove_temp_files

# Version 2: ``vertices`` holds the face region only, for every source (version 1 stored
# SynthFaces' whole head, so evaluation had to know which face model made a test set).
FORMAT_VERSION = 2
SAMPLE_KEYS = ("image", "landmarks", "front", "mask", "back", "affine", "frame")
OPTIONAL_KEYS = ("vertices", "sparse_vertices")  # test sets' face region; SynthFaces' sparse mesh (--vertices)
META_COLUMNS = ("id", "split", "source", "identity", "expression", "yaw", "pitch", "roll")
_SHARD_RE = re.compile(r"shard-(\d{5})\.npz$")


def shard_path(root, number: int) -> Path:
    return Path(root) / f"shard-{number:05d}.npz"


def check_sample(sample: dict) -> None:
    """Raise ValueError if a sample misses a field or has a wrong shape or dtype."""
    missing = [k for k in SAMPLE_KEYS if k not in sample]
    if missing:
        raise ValueError(f"sample is missing fields {missing}; a sample needs {list(SAMPLE_KEYS)}")
    img = np.asarray(sample["image"])
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"sample image must be (S, S, 3) uint8; got {img.dtype} {img.shape}")
    expect = {"landmarks": (68, 3), "affine": (3, 4), "frame": (4,), "back": ()}
    for k, shape in expect.items():
        if np.shape(sample[k]) != shape:
            raise ValueError(f"sample {k} must have shape {shape}; got {np.shape(sample[k])}")
    if np.shape(sample["front"]) != np.shape(sample["mask"]) or np.ndim(sample["front"]) != 2:
        raise ValueError(f"sample front and mask must be 2-D of one shape; got {np.shape(sample['front'])} and {np.shape(sample['mask'])}")


def write_shard(root, number: int, samples: list[dict], meta: list[dict]) -> Path:
    """Write samples (dicts, see module docstring) and their metadata rows as shard ``number``."""
    if len(samples) != len(meta) or not samples:
        raise ValueError(f"need one metadata row per sample and at least one sample; got {len(samples)} samples, {len(meta)} rows")
    for s in samples:
        check_sample(s)
    keys = list(SAMPLE_KEYS) + [k for k in OPTIONAL_KEYS if all(k in s for s in samples)]
    arrays = {k: np.stack([np.asarray(s[k]) for s in samples]) for k in keys}
    arrays["front"] = arrays["front"].astype(np.float16)
    arrays["format_version"] = np.array(FORMAT_VERSION)
    arrays["meta_json"] = np.array(json.dumps([_jsonable(m) for m in meta]))
    path = shard_path(root, number)
    atomic_write(path, lambda tmp: _savez(tmp, arrays))
    return path


def _savez(tmp, arrays):
    """np.savez_compressed, but faster: images stored as they are (noisy photos shrink only to 73 %
    under zlib, and compressing them was a tenth of a SynthFaces sample's time), the rest at zlib
    level 1 instead of 6 (1 % larger). A paper-size sample takes 137 KiB on disk instead of 108,
    and 1.2 ms to write instead of 3.4 (and reads back faster)."""
    import io
    import zipfile

    with zipfile.ZipFile(tmp, "w", allowZip64=True) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=False)
            entry = zipfile.ZipInfo(name + ".npy")  # (its fixed date: the same samples, the same bytes)
            z.writestr(entry, buf.getbuffer(), compresslevel=1,
                       compress_type=zipfile.ZIP_STORED if name == "image" else zipfile.ZIP_DEFLATED)


def _jsonable(row: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _load_shard(path, keys=None) -> tuple[dict, list[dict]]:
    """Arrays ``keys`` (None: all) and metadata of a shard, with the file checks both readers need."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"shard {path} does not exist; generate the dataset first (vrnkit synth / vrnkit prepare)")
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"]) if "format_version" in z.files else -1
            if version != FORMAT_VERSION:
                raise ValueError(f"shard {path} has format version {version}, this vrnkit reads version "
                                 f"{FORMAT_VERSION}; regenerate the dataset with this version of vrnkit")
            meta = json.loads(str(z["meta_json"]))
            names = [k for k in z.files if k not in ("format_version", "meta_json")] if keys is None else keys
            data = {k: z[k] for k in names}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise  # the system's error (permission denied...), not a broken file: do not advise deleting it
        raise ValueError(f"shard {path} is truncated or corrupt ({type(e).__name__}: {e}); "
                         f"{_remake_hint(path)}") from e
    except ValueError as e:
        if "format version" in str(e):
            raise
        raise ValueError(f"shard {path} is truncated or corrupt ({e}); {_remake_hint(path)}") from e
    return data, meta


def _remake_hint(shard) -> str:
    """How to write a broken shard again: the command in its folder's manifest, if there is one
    (running the training command again cannot do it; the dataset's own command can)."""
    try:
        command = (read_manifest(Path(shard).parent) or {}).get("command")
    except ValueError:
        command = None
    if command:
        return f"delete it and run `{command}` to write it again (it rewrites only missing shards)"
    return ("delete it and run the `vrnkit synth` or `vrnkit prepare` command that made this dataset again "
            "(it rewrites only missing shards)")


def ignore_ctrl_c() -> None:
    """Pool initializer for shard writers (synth, prepare): a worker leaves Ctrl-C to the main
    process, which stops it (no traceback from each worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def shard_is_complete(path, ids) -> bool:
    """True if ``path`` is a readable shard of this format holding exactly the samples ``ids``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ok = int(z["format_version"]) == FORMAT_VERSION and all(k in z.files for k in SAMPLE_KEYS)
            return ok and [m["id"] for m in json.loads(str(z["meta_json"]))] == list(ids)
    except Exception:  # missing, truncated or foreign: not complete
        return False


def read_shard(path) -> tuple[dict, list[dict]]:
    """Load a shard -> (arrays stacked over samples, metadata rows). Clear errors for bad files."""
    data, meta = _load_shard(path)
    missing = [k for k in SAMPLE_KEYS if k not in data]
    if missing:
        raise ValueError(f"shard {path} lacks fields {missing}; regenerate it")
    data["front"] = data["front"].astype(np.float32)
    return data, meta


def read_shard_meta(path) -> list[dict]:
    """Only the metadata rows of a shard (reads none of its arrays: fast for indexing)."""
    return _load_shard(path, keys=[])[1]


def list_shards(root) -> list[Path]:
    """Shard files of a dataset folder, in order."""
    root = Path(root)
    return sorted(p for p in root.glob("shard-*.npz") if _SHARD_RE.search(p.name))


def write_index(root) -> "pandas.DataFrame":
    """Rebuild ``index.csv`` from the shards' metadata (columns: shard, row, then metadata)."""
    import pandas as pd

    rows = []
    for p in list_shards(root):
        meta = read_shard_meta(p)
        n = int(_SHARD_RE.search(p.name).group(1))
        rows += [dict(shard=n, row=i, **m) for i, m in enumerate(meta)]
    df = pd.DataFrame(rows)
    atomic_write(Path(root) / "index.csv", lambda tmp: df.to_csv(tmp, index=False))
    return df


def read_index(root) -> "pandas.DataFrame":
    """The dataset's index table (pandas), with a clear error when the folder holds no dataset."""
    import pandas as pd

    root = Path(root)
    index = root / "index.csv"
    if not index.exists():
        if list_shards(root):
            return write_index(root)
        raise FileNotFoundError(f"no dataset in {root}: no index.csv and no shard-*.npz files. "
                                "Create one with `vrnkit synth` or `vrnkit prepare`, or check the path")
    try:
        df = pd.read_csv(index)
    except (ValueError, UnicodeDecodeError) as e:  # pandas' parser errors are ValueErrors
        why = f"{type(e).__name__}: {str(e).strip()}"
    else:
        missing = [c for c in ("shard", "row", "id") if c not in df.columns]
        why = f"no {', '.join(missing)} column" if missing else None
    if why:
        raise ValueError(f"{index} is not a vrnkit index table ({why}); delete it and run the command again: "
                         "it is rebuilt from the shards")
    return df


# ---------------------------------------------------------------------------------------------
# The manifest: what made a dataset folder, so that no writer mixes or deletes another's data.
#
# Every writer (`vrnkit synth`, `vrnkit prepare`) records its settings before it writes a shard:
# kind ("synth", "300wlp", "aflw2000", "folder"), protocol or source folder, seed, volume preset
# and size, split, shard size, counts, the shard format version and the command that makes the
# folder. A later run resumes only when the settings in IDENTITY agree; anything else is refused
# unless forced, so no run deletes or mixes in files that another one wrote.

MANIFEST_VERSION = 1
# SynthFaces folders keep the manifest in dataset.json, converted ones in prepare.json: the names
# earlier vrnkit versions used, so that folders made by them are still recognised.
MANIFEST_FILES = {"synth": "dataset.json", "prepare": "prepare.json"}
IDENTITY = ("kind", "protocol", "source", "model", "seed", "spec", "split", "subsets", "y_up", "shard_size",
            "n", "format_version", "generator_version")
DATASET_FILES = ("shard-*.npz", "index.csv", *MANIFEST_FILES.values())  # what --force may delete
SOURCE_NAMES = {"synth": "SynthFaces", "300wlp": "300W-LP", "aflw2000": "AFLW2000-3D", "folder": "image + mesh pairs"}


def read_manifest(root) -> dict | None:
    """The manifest of a dataset folder (None if it has none), older versions' included."""
    for writer, name in MANIFEST_FILES.items():
        path = Path(root) / name
        if not path.is_file():
            continue
        try:
            m = json.loads(path.read_text())
            assert isinstance(m, dict)
        except (ValueError, AssertionError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a readable dataset manifest ({type(e).__name__}); restore it, "
                             "or use another --out, or --force to replace the dataset") from None
        # Manifests written before MANIFEST_VERSION 1: fill in what they did not record.
        m.setdefault("kind", "synth" if writer == "synth" else None)
        if "root" in m and "source" not in m:
            m["source"] = str(Path(m["root"]).resolve())
        m.setdefault("format_version", FORMAT_VERSION)
        return m
    return None


def describe(m: dict) -> str:
    """One line for a manifest: "SynthFaces synth-300wlp (10 samples, seed 0, preset cpu)"."""
    what = SOURCE_NAMES.get(m.get("kind"), str(m.get("kind")))
    what += f" {m['protocol']}" if m.get("protocol") else (f" from {m['source']}" if m.get("source") else "")
    count = m.get("samples", m.get("n"))
    details = [f"{count} samples" if count is not None else None,
               f"seed {m['seed']}" if m.get("seed") is not None else None,
               f"preset {m['preset']}" if m.get("preset") else None]
    return f"{what} ({', '.join(d for d in details if d)})"


def dataset_files(root) -> list[Path]:
    """The files of a dataset in ``root``: shards, index.csv and the manifest."""
    root = Path(root)
    return list_shards(root) + [root / n for n in DATASET_FILES[1:] if (root / n).is_file()]


def claim_folder(out, manifest: dict, *, force: bool = False) -> None:
    """Make ``out`` the folder of the dataset that ``manifest`` describes, or refuse (ValueError).

    Allowed: a new or dataset-free folder, or one whose manifest has the same IDENTITY settings
    (an earlier run of this dataset: it resumes). ``force``: first delete the dataset files
    there (shards, index.csv, manifest), and nothing else. Refused: a folder holding another
    dataset, or dataset files without a manifest (nothing says what made them).
    Writes the manifest and removes temporary files that a killed run left.
    """
    out = check_out_folder(out)
    manifest = json.loads(json.dumps(manifest))  # as it reads back from JSON (lists, not tuples)
    old = read_manifest(out) if not force else None
    found = dataset_files(out)
    if force and found:
        print(f"--force: deleting the {len(found)} dataset files in {out} to write {describe(manifest)}")
        for p in found:
            p.unlink()
    elif old is not None:
        diff = [k for k in IDENTITY if old.get(k) != manifest.get(k)]
        if diff:
            shown = "; ".join(f"{k} {_short(old.get(k))} there, {_short(manifest.get(k))} here" for k in diff[:3])
            raise ValueError(f"{out} already holds a different dataset, {describe(old)}, made with other settings "
                             f"({shown}); use another --out, or add --force to replace it")
    elif found:
        names = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ValueError(f"{out} holds dataset files ({names}) but no {' or '.join(MANIFEST_FILES.values())} that "
                         "says what made them; use another --out, or add --force to replace them")
    remove_temp_files(out, DATASET_FILES)
    name = MANIFEST_FILES["synth" if manifest["kind"] == "synth" else "prepare"]
    manifest = dict(manifest, manifest_version=MANIFEST_VERSION)
    atomic_write(out / name, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))


def _short(value) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else repr(value)


# ---------------------------------------------------------------------------------------------
# Reading for training: a torch Dataset and a shard-aware shuffling sampler.

import torch  # noqa: E402  (torch is only needed from here on)


class ShardDataset(torch.utils.data.Dataset):
    """Samples of a dataset folder, as dicts of NumPy arrays plus their metadata row.

    Shards are loaded whole and kept in a small cache; use :class:`ShardSampler` so that a
    training epoch visits shards in groups instead of jumping between them.

    >>> ds = ShardDataset("data/synth-300wlp", split="train")   # doctest: +SKIP
    >>> ds[0]["image"].shape                                    # doctest: +SKIP
    (64, 64, 3)
    """

    def __init__(self, root, *, split: str | None = None, cache_shards: int = 8):
        self.root = Path(root)
        index = read_index(self.root)
        if split is not None:
            if "split" not in index or split not in set(index["split"]):
                have = sorted(set(index["split"])) if "split" in index else []
                raise ValueError(f"dataset {self.root} has no samples in split {split!r}; splits present: {have}")
            index = index[index["split"] == split]
        if len(index) == 0:
            raise ValueError(f"dataset {self.root} is empty; generate it again")
        self.index = index.reset_index(drop=True)
        self._shard = self.index["shard"].to_numpy()
        self._row = self.index["row"].to_numpy()
        self._cache: dict[int, dict] = {}
        self.cache_shards = cache_shards

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, keep) -> "ShardDataset":
        """Keep only the samples where the boolean array ``keep`` (one per sample) is True."""
        keep = np.asarray(keep, bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep must be one boolean per sample ({len(self)}); got shape {keep.shape}")
        self.index = self.index[keep].reset_index(drop=True)
        self._shard = self.index["shard"].to_numpy()
        self._row = self.index["row"].to_numpy()
        return self

    def shard_of(self, i: int) -> int:
        return int(self._shard[i])

    def _load(self, n: int) -> dict:
        if n not in self._cache:
            if len(self._cache) >= self.cache_shards:
                self._cache.pop(next(iter(self._cache)))  # oldest first
            self._cache[n], _ = read_shard(shard_path(self.root, n))
        return self._cache[n]

    def __getitem__(self, i: int) -> dict:
        arrays = self._load(self.shard_of(i))
        r = int(self._row[i])
        sample = {k: v[r] for k, v in arrays.items()}
        sample["index"] = i
        return sample


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch of tensors: image becomes (B, 3, S, S) float32 in [0, 1]."""
    batch = {}
    for k in samples[0]:
        if k == "image":
            img = np.stack([s[k] for s in samples])
            batch[k] = torch.from_numpy(img).permute(0, 3, 1, 2).float().div_(255)
        elif k == "index":
            batch[k] = torch.tensor([s[k] for s in samples])
        else:
            batch[k] = torch.from_numpy(np.stack([np.asarray(s[k]) for s in samples]))
    return batch


class ShardSampler(torch.utils.data.Sampler):
    """Shuffled indices that stay within a few shards at a time; deterministic from
    (seed, epoch), and able to start part way through an epoch (exact resume).

    The order: shards shuffled, taken ``group`` at a time, samples shuffled within a group.
    """

    def __init__(self, dataset: ShardDataset, *, seed: int = 0, group: int = 4, shuffle: bool = True):
        self.dataset, self.seed, self.group, self.shuffle = dataset, seed, group, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Epoch to draw, and how many of its indices to skip (already trained on)."""
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.default_rng([self.seed, epoch])
        shards = self.dataset._shard
        ids = np.unique(shards)
        rng.shuffle(ids)
        out = []
        for g in range(0, len(ids), self.group):
            members = np.nonzero(np.isin(shards, ids[g:g + self.group]))[0]
            out.append(rng.permutation(members))
        return np.concatenate(out)

    def __iter__(self):
        return iter(self.order(self.epoch)[self.start:].tolist())

    def __len__(self) -> int:
        return len(self.dataset) - self.start
