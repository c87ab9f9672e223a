"""Fitting a face model to 68 2D landmarks: the baselines VRN is compared with.

* :func:`fit_pose`: the weak-perspective pose (scale, rotation, translation) of 3D points
  that project onto given 2D points.
* :func:`fit_landmarks`: pose, identity and expression of the SynthFaces model fitted to the
  68 landmarks by regularised linear least squares, in the spirit of EOS (Huber et al. 2016);
  ``shape=False`` poses the mean face only.

On SynthFaces the model is the one that made the test faces, so the fit is an oracle-model
baseline there; on real faces it meets a model mismatch that VRN does not have.

>>> from vrnkit.synthfaces.dataset import make_sample
>>> from vrnkit.config import VolumeSpec
>>> sample, _ = make_sample("synth-florence", 0, spec=VolumeSpec.preset("paper"))
>>> fit = fit_landmarks(sample["landmarks"][:, :2])
>>> fit.vertices.shape, bool(fit.rms < 2.0)
((15933, 3), True)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthfaces.model import FaceModel


@dataclass
class Fit:
    """A face model fitted to 2D landmarks: vertices (N, 3) in the landmarks' pixels (x, y; z up
    to a constant), scale s, rotation R (3, 3), translation t (2,), identity, expression, and the
    RMS landmark residual in pixels."""

    vertices: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    rms: float


def fit_pose(points3d, points2d) -> tuple[float, np.ndarray, np.ndarray]:
    """Weak-perspective pose: (s, R, t) with points2d ~ s * (points3d @ R.T)[:, :2] + t.

    An affine camera (2 x 4) is fitted by least squares, then made a scaled rotation: the
    nearest two orthonormal rows (SVD) times the mean of the singular values; the third row is
    their cross product (z toward the viewer in image space, so R is a proper rotation).
    """
    X = np.asarray(points3d, np.float64)
    x = np.asarray(points2d, np.float64)
    A = np.linalg.lstsq(np.c_[X, np.ones(len(X))], x, rcond=None)[0].T  # (2, 4)
    u, s, vt = np.linalg.svd(A[:, :3], full_matrices=False)
    rows = u @ vt
    R = np.vstack([rows, np.cross(rows[0], rows[1])])
    return float(s.mean()), R, A[:, 3]


def fit_landmarks(landmarks2d, *, model: FaceModel | None = None, shape: bool = True, iterations: int = 6,
                  noise_px: float = 1.5) -> Fit:
    """Fit pose, identity and expression of the SynthFaces model to (68, 2) landmarks.

    Alternates :func:`fit_pose` and a linear least-squares solve for the shape parameters with a
    Gaussian prior: identity in standard deviations (prior sd 1), expression strengths (prior sd
    0.5), landmark noise ``noise_px``. ``shape=False`` fits the pose of the mean face only.
    """
    model = model or FaceModel.default()
    x = np.asarray(landmarks2d, np.float64)[:, :2]
    if x.shape != (68, 2) or not np.all(np.isfinite(x)):
        raise ValueError(f"landmarks must be 68 finite (x, y) points; got shape {np.shape(landmarks2d)}")
    idx = model.landmarks
    cols = np.ravel(np.c_[3 * idx, 3 * idx + 1, 3 * idx + 2])  # rows of the bases at the landmarks
    basis = np.hstack([model.identity_basis[cols], model.expression_basis[cols]]).astype(np.float64)
    n_id = model.identity_basis.shape[1]
    prior_sd = np.r_[np.ones(n_id), np.full(basis.shape[1] - n_id, 0.5)]
    mean_lm = model.mean[idx].astype(np.float64)
    params = np.zeros(basis.shape[1])
    for _ in range(iterations if shape else 1):
        lm3d = mean_lm + (basis @ params).reshape(68, 3)
        s, R, t = fit_pose(lm3d, x)
        if not shape:
            break
        # x - t - s P R mean = s P R B params, P keeping x and y: one linear system in params
        project = s * R[:2]  # (2, 3)
        A = np.einsum("ij,kjp->kip", project, basis.reshape(68, 3, -1)).reshape(136, -1)
        b = (x - t - mean_lm @ project.T).reshape(-1)
        reg = np.diag((noise_px / prior_sd) ** 2)
        params = np.linalg.solve(A.T @ A + reg, A.T @ b)
    lm3d = mean_lm + (basis @ params).reshape(68, 3)
    s, R, t = fit_pose(lm3d, x)
    ident, expr = params[:n_id], params[n_id:]
    v = model.mean.astype(np.float64) + (model.identity_basis @ ident + model.expression_basis @ expr).reshape(-1, 3)
    posed = s * v @ R.T
    posed[:, :2] += t
    rms = float(np.sqrt(np.mean(np.sum((posed[idx, :2] - x) ** 2, 1))))
    return Fit(posed.astype(np.float32), s, R, t, ident, expr, rms)
