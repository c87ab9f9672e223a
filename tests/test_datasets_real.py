"""Real-data readers on fixture files written here in the real formats (MATLAB v5 .mat, JPEG).

The fixtures use a small face-like model (vrnkit.datasets.morphable.toy_face_model) written with the
real field names and shapes. Known meshes are rebuilt below with 3DDFA's formulas written out
independently of vrnkit, and compared with what the readers produce.

Reusable: make_300wlp_fixture(tmp_path, n=...) and make_aflw2000_fixture(tmp_path, n=...)
return (dataset root, model folder) for other tests (e.g. a short training run).
"""
import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from vrnkit.config import VolumeSpec
from vrnkit.geometry import CropFrame, euler_to_matrix
from vrnkit.datasets.morphable import load_morphable_model, toy_face_model
from vrnkit.raster import rasterize
from vrnkit.datasets.morphable import read_params
from vrnkit.datasets.real import Face, folder_sample, prepare
from vrnkit.geometry import crop_image
from vrnkit.datasets.shards import ShardDataset, check_sample, collate, list_shards, read_index, read_shard
from vrnkit.voxel import mesh_to_volume, slab_from_model, slab_to_volume

QUICK = VolumeSpec.preset("cpu")
H = W = 450  # 300W-LP and AFLW2000-3D images are 450 x 450


# ---------------------------------------------------------------------------------------------
# Reference formulas (3DDFA, written out)

def rot_3ddfa(pitch, yaw, roll):
    """3DDFA's RotationMatrix.m: R = Rx * Ry * Rz."""
    cx, sx, cy, sy, cz, sz = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def known_mesh(files, sp, ep, pose, height):
    """Photo vertices (N, 3), 0-based pixels: 3DDFA's mesh, pose and y flip, then -0.5 px."""
    vec = files["mu_shape"] + files["mu_exp"] + files["w"] @ sp + files["w_exp"] @ ep
    v = vec.reshape(3, -1, order="F")
    X = pose[6] * rot_3ddfa(*pose[:3]) @ v + pose[3:6, None]  # MATLAB: 1-based pixel centres
    return np.stack([X[0] - 0.5, height + 1 - X[1] - 0.5, X[2]], 1)


# ---------------------------------------------------------------------------------------------
# Fixture writers

def write_model(folder, seed=0):
    """Model_Shape.mat + Model_Expression.mat with the real field names, shapes and 1-based indices."""
    m = toy_face_model(seed=seed)
    mean = m.mean.astype(np.float64).reshape(-1, 1)
    files = dict(mu_shape=mean * 0.9, mu_exp=mean * 0.1, w=m.shape_basis.astype(np.float64),
                 w_exp=m.exp_basis.astype(np.float64), tri=(m.faces.T + 1).astype(np.float64),
                 keypoints=(m.landmarks[None] + 1).astype(np.float64),
                 sigma=m.shape_sigma.reshape(-1, 1), sigma_exp=m.exp_sigma.reshape(-1, 1))
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "Model_Shape.mat", {k: files[k] for k in ("mu_shape", "w", "sigma", "tri", "keypoints")})
    savemat(folder / "Model_Expression.mat", {k: files[k] for k in ("mu_exp", "w_exp", "sigma_exp")})
    files["faces"], files["landmarks"] = m.faces, m.landmarks
    return files


def random_params(rng, files, *, max_yaw=70):
    sp = rng.normal(size=(199, 1)) * files["sigma"]
    ep = rng.normal(size=(29, 1)) * files["sigma_exp"] * 0.5
    angles = np.radians([rng.uniform(-20, 20), rng.uniform(-max_yaw, max_yaw), rng.uniform(-20, 20)])
    s = 100 / 75_000 * rng.uniform(0.8, 1.2)  # a face about 200 px wide
    pose = np.concatenate([angles, [W / 2 + rng.uniform(-20, 20), H / 2 + rng.uniform(-20, 20), 0.0], [s]])
    return sp, ep, pose


def render(photo_vertices, faces, height=H, width=W):
    """A shaded face on a dark background, as JPEG-able (H, W, 3) uint8."""
    r = rasterize(photo_vertices, faces, height, width)
    z = r.depth[r.mask]
    img = np.full((height, width, 3), 20, np.uint8)
    if not len(z):
        return img
    shade = 120 + 120 * (z - z.min()) / max(np.ptp(z), 1e-9)
    img[r.mask] = np.stack([shade, shade * 0.8, shade * 0.7], 1).astype(np.uint8)
    return img


def write_face(folder, name, files, params, *, pts_folder=None, aflw=False, image_size=(H, W)):
    """One face: <name>.jpg + <name>.mat (+ landmarks/<subset>/<name>_pts.mat for 300W-LP)."""
    sp, ep, pose = params
    photo = known_mesh(files, sp, ep, pose, H)
    img = render(photo, files["faces"])
    if image_size != (H, W):  # a resized image: its parameters no longer fit it
        img = np.asarray(Image.fromarray(img).resize(image_size[::-1]))
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / f"{name}.jpg", quality=95)
    kp = photo[files["landmarks"]] + [0.5, 0.5, 0]  # back to MATLAB's 1-based pixel centres
    mat = dict(Pose_Para=pose[None], Shape_Para=sp, Exp_Para=ep, Color_Para=np.zeros((1, 7)),
               Illum_Para=np.zeros((1, 10)), Tex_Para=np.zeros((199, 1)), roi=np.array([[100, 100, 350, 350]]))
    if aflw:
        mat["pt3d_68"] = kp.T  # 3 x 68
    else:
        mat["pt2d"] = kp[:, :2].T
    savemat(folder / f"{name}.mat", mat)
    if pts_folder is not None:
        pts_folder.mkdir(parents=True, exist_ok=True)
        savemat(pts_folder / f"{name}_pts.mat", dict(pts_2d=kp[:, :2], pts_3d=kp[:, :2]))
    return photo


def make_300wlp_fixture(tmp_path, n=8, *, poses_per_face=2, seed=0):
    """A 300W-LP tree of ``n`` faces (AFW and HELEN, plus an AFW_Flip copy that is skipped by
    default); like the real set, the rotated views of one fit share Shape_Para and Exp_Para.
    Returns (root, model folder)."""
    rng = np.random.default_rng(seed)
    model_dir = tmp_path / "model"
    files = write_model(model_dir)
    root = tmp_path / "300W_LP"
    for i in range(n):
        sub = ("AFW", "HELEN")[i % 2]
        if i % poses_per_face == 0:
            sp, ep, _ = random_params(rng, files)
        params = (sp, ep, random_params(rng, files)[2])
        write_face(root / sub, f"{sub}_{1000 + i // poses_per_face}_1_{i % poses_per_face}", files, params,
                   pts_folder=root / "landmarks" / sub)
    write_face(root / "AFW_Flip", "AFW_1000_1_0", files, random_params(rng, files))
    return root, model_dir


def make_aflw2000_fixture(tmp_path, n=4, *, seed=1):
    """An AFLW2000-3D folder of ``n`` faces. Returns (root, model folder)."""
    rng = np.random.default_rng(seed)
    model_dir = tmp_path / "model"
    files = write_model(model_dir)
    root = tmp_path / "AFLW2000"
    for i in range(n):
        write_face(root, f"image{i:05d}", files, random_params(rng, files), aflw=True)
    return root, model_dir


def run_cli(argv):
    """The `vrnkit` command line, in this process (exit code)."""
    from vrnkit import cli

    return cli.main(argv)


# ---------------------------------------------------------------------------------------------
# The model files

def test_loads_3ddfa_model_files(tmp_path):
    files = write_model(tmp_path)
    m = load_morphable_model(tmp_path)
    assert m.n_vertices == len(files["mu_shape"]) // 3 and (m.n_shape, m.n_exp) == (199, 29)
    np.testing.assert_allclose(m.mean, (files["mu_shape"] + files["mu_exp"]).reshape(3, -1, order="F").T, rtol=1e-6)
    np.testing.assert_array_equal(m.faces, files["tri"].T - 1)
    np.testing.assert_array_equal(m.landmarks, files["keypoints"][0] - 1)
    region = m.face_region
    assert 0.3 * m.n_vertices < len(region) < m.n_vertices and set(m.landmarks[[36, 45]]) <= set(region)


def test_loads_bfm2009_with_3ddfa_trim(tmp_path):
    files = write_model(tmp_path / "3ddfa")
    n = len(files["mu_shape"]) // 3
    rng = np.random.default_rng(0)
    trim = rng.permutation(n + 40)[:n]  # BFM has more vertices; 3DDFA keeps some, in its order
    full_mu = rng.normal(size=(n + 40, 3))
    full_mu[trim] = (files["mu_shape"] + files["mu_exp"]).reshape(3, -1, order="F").T
    full_pc = rng.normal(size=(n + 40, 3, 199))
    full_pc[trim] = files["w"].reshape(n, 3, 199)
    bfm = tmp_path / "bfm"
    bfm.mkdir()
    savemat(bfm / "01_MorphableModel.mat", dict(shapeMU=full_mu.reshape(-1, 1), shapePC=full_pc.reshape(-1, 199),
                                                shapeEV=files["sigma"], tl=np.ones((10, 3))))
    savemat(bfm / "model_info.mat", dict(trimIndex=(trim + 1.0)[:, None], tri=files["tri"], keypoints=files["keypoints"]))
    savemat(bfm / "Model_Expression.mat", dict(mu_exp=np.zeros_like(files["mu_exp"]), w_exp=files["w_exp"],
                                               sigma_exp=files["sigma_exp"]))
    a, b = load_morphable_model(tmp_path / "3ddfa"), load_morphable_model(bfm)
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-6)
    np.testing.assert_allclose(b.shape_basis, a.shape_basis, rtol=1e-6)
    np.testing.assert_array_equal(b.faces, a.faces)


def test_missing_model_files_say_what_and_where(tmp_path):
    (tmp_path / "Model_Expression.mat").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as e:
        load_morphable_model(tmp_path)
    msg = str(e.value)
    assert "Model_Shape.mat" in msg and "3DDFA" in msg and "Basel" in msg and "--model" in msg


def test_model_file_with_wrong_shapes_is_named(tmp_path):
    files = write_model(tmp_path)
    savemat(tmp_path / "Model_Expression.mat", dict(mu_exp=files["mu_exp"], w_exp=files["w_exp"][:-3]))
    with pytest.raises(ValueError, match="Model_Expression.mat"):
        load_morphable_model(tmp_path)
    savemat(tmp_path / "Model_Shape.mat", dict(mu_shape=files["mu_shape"], w=files["w"], tri=files["tri"]))
    with pytest.raises(ValueError, match=r"Model_Shape.mat has no field.*keypoints"):
        load_morphable_model(tmp_path)


def test_toy_model_round_trips_through_3ddfa_files(tmp_path):
    m = toy_face_model(seed=3)
    m.save_3ddfa(tmp_path)
    back = load_morphable_model(tmp_path)
    np.testing.assert_array_equal(back.mean, m.mean)
    np.testing.assert_array_equal(back.faces, m.faces)


# ---------------------------------------------------------------------------------------------
# Geometry

@pytest.fixture(scope="module")
def aflw(tmp_path_factory):
    root, model_dir = make_aflw2000_fixture(tmp_path_factory.mktemp("aflw"), n=4)
    return root, model_dir, load_morphable_model(model_dir)


def test_reader_rebuilds_known_meshes_and_pt3d_reprojects(aflw, tmp_path):
    root, model_dir, model = aflw
    files = write_model(tmp_path)  # the same toy model (seed 0) as the fixture's
    for mat in sorted(root.glob("*.mat")):
        p = read_params(mat, model, extra=("pt3d_68",))
        face = Face.from_params(model, p["Shape_Para"], p["Exp_Para"], p["Pose_Para"], image_height=H)
        want = known_mesh(files, p["Shape_Para"][:, None], p["Exp_Para"][:, None], p["Pose_Para"], H)
        got = face.photo_vertices()
        assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()
        # pt3d_68 (MATLAB pixels) lands on the model's landmarks within 1 px.
        err = np.linalg.norm(got[model.landmarks, :2] - (p["pt3d_68"][:2].T - 0.5), axis=1)
        assert err.max() < 1.0
        # The angles are vrnkit's: euler_to_matrix(pitch, yaw, roll) is the rotation in image axes.
        a = face.angles
        r = face.to_photo[:, :3] / p["Pose_Para"][6]
        np.testing.assert_allclose(r, euler_to_matrix(*np.radians([a["pitch"], a["yaw"], a["roll"]])), atol=1e-12)


def test_samples_have_the_shard_format_and_the_paper_crop(aflw, tmp_path):
    root, model_dir, model = aflw
    out = tmp_path / "out"
    prepare("aflw2000", root, out, model=model, preset="paper", workers=1, limit=1, progress=False)
    arrays, meta = read_shard(list_shards(out)[0])
    s = {k: v[0] for k, v in arrays.items()}
    check_sample(s)
    expect = dict(image=((192, 192, 3), np.uint8), landmarks=((68, 3), np.float32), front=((192, 192), np.float32),
                  mask=((192, 192), bool), back=((), np.float32), affine=((3, 4), np.float32), frame=((4,), np.float64))
    for k, (shape, dtype) in expect.items():
        assert s[k].shape == shape and s[k].dtype == dtype, k
    assert s["vertices"].dtype == np.float32 and s["vertices"].shape == (len(model.face_region), 3)
    assert set(meta[0]) == {"id", "split", "source", "identity", "expression", "yaw", "pitch", "roll"}
    assert meta[0]["split"] == "test" and meta[0]["source"] == "aflw2000-3d"
    # The paper's crop: the landmark box is 90 px (sqrt of w * h), centred, mean depth mid-volume.
    lm = s["landmarks"].astype(np.float64)
    w_, h_ = lm[:, :2].max(0) - lm[:, :2].min(0)
    assert abs(np.sqrt(w_ * h_) - 90) < 1e-3 and abs(lm[:, 2].mean() - 50) < 1e-3


def test_samples_match_synthfaces_field_for_field(aflw, tmp_path):
    root, model_dir, model = aflw
    prepare("aflw2000", root, tmp_path, model=model, preset="cpu", workers=1, limit=1, progress=False)
    arrays, meta = read_shard(list_shards(tmp_path)[0])
    s = {k: v[0] for k, v in arrays.items()}
    # Field for field against SynthFaces' test set (vertex counts differ: another mesh).
    synth = pytest.importorskip("vrnkit.synthfaces.dataset")
    try:
        other, other_meta = synth.make_sample("synth-aflw2000", 0, spec=QUICK)
    except ImportError as e:  # SynthFaces is being written at the same time
        pytest.skip(f"SynthFaces cannot make a sample yet: {e}")
    assert set(other) == set(s) and set(other_meta) == set(meta[0])
    for k in other:
        assert np.asarray(other[k]).dtype == s[k].dtype, k
        assert np.shape(other[k]) == s[k].shape or k == "vertices", k
    assert other["vertices"].shape[1:] == s["vertices"].shape[1:]


def test_slab_is_slab_from_model_and_matches_the_posed_mesh(aflw, tmp_path):
    root, model_dir, model = aflw
    out = tmp_path / "out"
    prepare("aflw2000", root, out, model=model, preset="cpu", workers=1, progress=False)
    ds = ShardDataset(out)
    for i in range(len(ds)):
        s = ds[i]
        p = read_params(root / f"{ds.index['id'][i]}.mat", model)
        face = Face.from_params(model, p["Shape_Para"], p["Exp_Para"], p["Pose_Para"], image_height=H)
        frame = CropFrame.from_array(s["frame"])
        ref = slab_from_model(face.frontal, model.faces, frame.matrix[:3] @ np.vstack([face.to_photo, [0, 0, 0, 1]]),
                              grid_shape=(QUICK.height, QUICK.width))
        # (The reader builds meshes in batches: the last bits of the vertices may differ.)
        assert (s["mask"] != ref.mask).sum() <= 0.005 * ref.mask.sum()
        np.testing.assert_allclose(s["affine"], ref.affine, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s["front"], ref.front, atol=0.05)  # stored as float16
        # The volume's front surface is the posed mesh's visible surface (reference: z-buffer).
        crop_v = frame.photo_to_crop(face.photo_vertices())
        r = rasterize(crop_v, model.faces, QUICK.height, QUICK.width)
        vol = slab_to_volume(ref, QUICK)
        seen = vol.any(0)
        # The solid reaches back to a flat back, so its outline may be wider than the mesh's.
        assert (r.mask & ~seen).sum() < 0.03 * r.mask.sum()
        top = (QUICK.depth - 1 - np.argmax(vol[::-1], axis=0) + 0.5) / QUICK.depth_scale
        both = seen & r.mask
        assert np.median(np.abs(top[both] - r.depth[both])) < 1.0
        # The cropped photo shows the face where the mesh is.
        bright = s["image"].mean(-1) > 60
        assert (bright & r.mask).sum() / (bright | r.mask).sum() > 0.9
        # Ground-truth vertices are the face region, in the crop.
        np.testing.assert_allclose(s["vertices"], crop_v[model.face_region], atol=1e-3)


def test_crop_image_matches_skimage_warp():
    from skimage.transform import warp

    rng = np.random.default_rng(0)
    img = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    frame = CropFrame(1.7, -20.0, -15.0)
    got = crop_image(img, frame, 48, anti_alias=False)
    # skimage: output pixel (col, row) takes input ((col + 0.5 - t) / s - 0.5, ...).
    inv = lambda cr: (cr + 0.5 - [frame.tx, frame.ty]) / frame.scale - 0.5  # noqa: E731
    want = warp(img.astype(float), inv, output_shape=(48, 48), order=1, mode="edge", preserve_range=True)
    assert np.abs(got.astype(float) - want).max() <= 0.5 + 1e-6  # rounding only
    # Crop pixels whose centres fall off the photo are black.
    off = crop_image(img, CropFrame(1.0, 70.0, 0.0), 100, anti_alias=False)
    assert not off[:, :70].any() and not off[:, 150:].any() and off[:60, 70:150].any()
    # Shrinking a fine checkerboard: anti-aliasing gives flat grey instead of moire.
    board = (np.indices((200, 200)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    small = crop_image(board, CropFrame(0.23, 0.0, 0.0), 40)
    assert abs(small.mean() - 127.5) < 10 and small.std() < 10


# ---------------------------------------------------------------------------------------------
# The command line, resuming, and bad input

def test_cli_converts_300wlp_and_aflw2000_trees(tmp_path):
    wlp, model_dir = make_300wlp_fixture(tmp_path / "a", n=6)
    aflw_root, _ = make_aflw2000_fixture(tmp_path / "b", n=3)
    out1, out2 = tmp_path / "wlp", tmp_path / "aflw"
    assert run_cli(["prepare", "300wlp", "--root", str(wlp), "--model", str(model_dir), "--out", str(out1),
                    "--preset", "cpu", "--shard-size", "2", "--workers", "2", "--no-progress"]) == 0
    assert run_cli(["prepare", "aflw2000", "--root", str(aflw_root), "--model", str(model_dir), "--out", str(out2),
                    "--preset", "cpu", "--shard-size", "2", "--no-progress"]) == 0
    for out, n, split in ((out1, 6, "train"), (out2, 3, "test")):
        index = read_index(out)
        assert len(index) == n and index["id"].is_unique and set(index["split"]) == {split}
        ds = ShardDataset(out, split=split)
        batch = collate([ds[i] for i in range(len(ds))])
        assert tuple(batch["image"].shape) == (n, 3, 64, 64) and tuple(batch["landmarks"].shape) == (n, 68, 3)
    assert not any("Flip" in i for i in read_index(out1)["id"])  # flips are left to augmentation
    assert "vertices" in ShardDataset(out2)[0] and "vertices" not in ShardDataset(out1)[0]


def test_converted_300wlp_trains_for_a_few_steps(tmp_path):
    """The converted shards go through the same trainer as SynthFaces (the loss goes down)."""
    import pandas as pd

    from vrnkit.train import TrainConfig, train

    root, model_dir = make_300wlp_fixture(tmp_path, n=8)
    out = tmp_path / "shards"
    assert run_cli(["prepare", "300wlp", "--root", str(root), "--model", str(model_dir), "--out", str(out),
                    "--preset", "cpu", "--shard-size", "4", "--workers", "1", "--no-progress"]) == 0
    cfg = TrainConfig(model_preset="cpu", data=str(out), out=str(tmp_path / "run"), steps=12, batch_size=4,
                      val_holdout=0, model_options=dict(features=16, hourglass_depth=2), augment=False,
                      progress=False, num_workers=0, lr=1e-3, lr_final=1e-3)
    result = train(cfg)
    assert result["step"] == 12 and (tmp_path / "run" / "model.pt").is_file()
    steps = pd.read_csv(tmp_path / "run" / "metrics.csv").query("kind == 'step'")
    assert steps["loss"].iloc[-3:].mean() < steps["loss"].iloc[:3].mean()


def _shards(out):
    return {p.name: read_shard(p) for p in list_shards(out)}


def test_interrupted_conversion_resumes_to_identical_shards(tmp_path):
    root, model_dir = make_300wlp_fixture(tmp_path, n=7)
    kw = dict(model=model_dir, preset="cpu", shard_size=2, workers=1, progress=False)
    prepare("300wlp", root, tmp_path / "full", **kw)
    want = _shards(tmp_path / "full")
    out = tmp_path / "resumed"
    prepare("300wlp", root, out, limit=3, **kw)  # killed after 3 faces: shard 1 is half full
    os.remove(list_shards(out)[0])  # a lost shard
    (out / ".shard-00002.npz.x1y2.tmp").write_bytes(b"half a shard")  # a killed write
    prepare("300wlp", root, out, **{**kw, "workers": 2})
    got = _shards(out)
    assert sorted(got) == sorted(want) and not list(out.glob("*.tmp"))
    for name, (arrays, meta) in want.items():
        assert got[name][1] == meta
        for k, a in arrays.items():
            np.testing.assert_array_equal(got[name][0][k], a, err_msg=f"{name} {k}")
    index = read_index(out)
    assert len(index) == 7 and index["id"].is_unique
    # A shorter run in the same folder drops the shards it no longer makes (no duplicates).
    prepare("300wlp", root, out, limit=4, **kw)
    assert len(read_index(out)) == 4 and len(list_shards(out)) == 2
    with pytest.raises(ValueError, match="other settings"):
        prepare("300wlp", root, out, **{**kw, "preset": "paper"})


def _corrupt(kind):
    """Edit one fixture face of an AFLW2000-3D folder -> (file that must be named, message)."""
    def edit(root, files):
        mat, jpg = root / "image00001.mat", root / "image00001.jpg"
        rng = np.random.default_rng(5)
        sp, ep, pose = random_params(rng, files)
        if kind == "missing field":
            savemat(mat, dict(Pose_Para=pose[None], Shape_Para=sp, pt3d_68=np.zeros((3, 68))))
            return mat, "no field"
        if kind == "wrong shape":
            savemat(mat, dict(Pose_Para=pose[None], Shape_Para=sp[:150], Exp_Para=ep, pt3d_68=np.zeros((3, 68))))
            return mat, "Shape_Para has shape"
        if kind == "face off the image":
            pose[3] += 3000
            write_face(root, "image00001", files, (sp, ep, pose), aflw=True)
            return jpg, "outside its 450x450 image"
        if kind == "resized image":
            write_face(root, "image00001", files, (sp, ep, pose), aflw=True, image_size=(300, 300))
            return jpg, "do not match"
        if kind == "truncated mat":
            mat.write_bytes(mat.read_bytes()[:300])
            return mat, "corrupt"
        if kind == "broken jpeg":
            jpg.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
            return jpg, "could not read image"
    return edit


@pytest.mark.parametrize("kind", ["missing field", "wrong shape", "face off the image", "resized image",
                                  "truncated mat", "broken jpeg"])
def test_bad_input_gives_a_clear_error_naming_the_file(tmp_path, capsys, kind):
    root, model_dir = make_aflw2000_fixture(tmp_path, n=2)
    files = write_model(tmp_path / "ref")
    path, message = _corrupt(kind)(root, files)
    code = run_cli(["prepare", "aflw2000", "--root", str(root), "--model", str(model_dir),
                    "--out", str(tmp_path / "out"), "--preset", "cpu", "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and message in err, err


def test_missing_model_or_partner_files_are_reported(tmp_path, capsys):
    root, model_dir = make_aflw2000_fixture(tmp_path, n=1)
    args = ["prepare", "aflw2000", "--root", str(root), "--out", str(tmp_path / "o"), "--no-progress"]
    assert run_cli(args) == 2 and "--model" in capsys.readouterr().err
    assert run_cli(args + ["--model", str(tmp_path / "nowhere")]) == 2
    assert "Model_Shape.mat" in capsys.readouterr().err
    os.remove(root / "image00000.mat")
    assert run_cli(args + ["--model", str(model_dir)]) == 2
    assert "image00000.mat" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Your own (image, mesh) pairs

def _dome(cx, cy, r, n=24):
    """An open dome (a face-sized cap) in image space: (vertices, faces), y down, z toward viewer."""
    t, p = np.meshgrid(np.linspace(0, np.pi * 0.45, n), np.linspace(0, 2 * np.pi, 2 * n, endpoint=False), indexing="ij")
    v = np.stack([cx + r * np.sin(t) * np.cos(p), cy + r * np.sin(t) * np.sin(p), r * np.cos(t)], -1).reshape(-1, 3)
    i = np.arange(n - 1)[:, None] * 2 * n + np.arange(2 * n)[None]
    j = np.arange(n - 1)[:, None] * 2 * n + (np.arange(2 * n)[None] + 1) % (2 * n)
    f = np.concatenate([np.stack([i, j, i + 2 * n], -1).reshape(-1, 3), np.stack([j, j + 2 * n, i + 2 * n], -1).reshape(-1, 3)])
    return v, f


def test_folder_pairs_become_front_filled_slabs(tmp_path):
    import trimesh

    v, f = _dome(150, 120, 80)
    img = render(v, f, 240, 300)
    Image.fromarray(img).save(tmp_path / "scan.png")
    trimesh.Trimesh(v, f, process=False).export(tmp_path / "scan.obj")
    lm = np.column_stack([150 + 50 * np.cos(np.linspace(0, 6, 68)), 120 + 50 * np.sin(np.linspace(0, 6, 68))])
    np.savetxt(tmp_path / "scan.txt", lm)
    s = folder_sample(tmp_path / "scan.png", tmp_path / "scan.obj", QUICK, landmarks_path=tmp_path / "scan.txt")
    check_sample(s)
    frame = CropFrame.from_array(s["frame"])
    np.testing.assert_array_equal(s["affine"], np.eye(3, 4))
    vol = slab_to_volume(slab_from_sample(s), QUICK)
    ref = mesh_to_volume(frame.photo_to_crop(v), f, QUICK, fill="front", back=float(s["back"]))
    np.testing.assert_array_equal(vol, ref)  # the same rule, voxel for voxel
    assert abs(s["landmarks"][:, 2].mean() - QUICK.depth_span / 2) < 0.5  # landmark depth mid-volume
    # The same scan stored y-up gives the same sample; without landmarks they are NaN.
    (tmp_path / "elsewhere").mkdir()
    trimesh.Trimesh(v * [1, -1, 1] + [0, 240, 0], f, process=False).export(tmp_path / "elsewhere" / "up.ply")
    up = folder_sample(tmp_path / "scan.png", tmp_path / "elsewhere" / "up.ply", QUICK, landmarks_path=tmp_path / "scan.txt", y_up=True)
    np.testing.assert_array_equal(up["mask"], s["mask"])
    nolm = folder_sample(tmp_path / "scan.png", tmp_path / "scan.obj", QUICK)
    assert np.isnan(nolm["landmarks"]).all() and nolm["mask"].any()
    # Through prepare: pairs by stem, and an image without a mesh is reported.
    index = prepare("folder", tmp_path, tmp_path / "out", preset="cpu", workers=1, progress=False)
    assert list(index["id"]) == ["scan"]
    Image.fromarray(img).save(tmp_path / "lonely.jpg")
    with pytest.raises(ValueError, match="lonely.jpg"):
        prepare("folder", tmp_path, tmp_path / "out2", preset="cpu", workers=1, progress=False)


def slab_from_sample(s):
    from vrnkit.voxel import Slab

    return Slab(s["front"], s["mask"], float(s["back"]), s["affine"])


def test_prepare_json_records_the_settings(tmp_path):
    root, model_dir = make_aflw2000_fixture(tmp_path, n=1)
    prepare("aflw2000", root, tmp_path / "o", model=model_dir, preset="cpu", workers=1, progress=False)
    rec = json.loads((tmp_path / "o" / "prepare.json").read_text())
    assert rec["kind"] == "aflw2000" and rec["spec"]["depth"] == 64
