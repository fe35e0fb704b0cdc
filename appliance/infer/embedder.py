"""Face identity embeddings: align a face onto the ArcFace 112x112 template, run MobileFaceNet, L2-normalise."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .faces import Face
from .runtime import CpuBackend

ALIGNED_SIZE = 112
# The ArcFace five-point template (eye centres, nose tip, mouth corners) in the 112x112 crop. BlazeFace
# gives the mouth's centre, not its corners, so the corners' midpoint stands for it.
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # the eye on the image's left (the subject's right eye)
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [(41.5493 + 70.7299) / 2, (92.3655 + 92.2041) / 2],
    ],
    dtype=np.float64,
)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + translation taking `source` points closest to `target`.

    Least squares in closed form (Umeyama 1991, without reflection); small enough that a dependency
    (scikit-image, OpenCV) for it would weigh more than it saves.
    """
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = (singular * np.diag(sign)).sum() / src.var(axis=0).sum()
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align(image: Image.Image, face: Face) -> Image.Image:
    """The 112x112 crop of `face`, eyes, nose and mouth on the template's points."""
    points = np.array(face.keypoints[:4], dtype=np.float64) * np.array(image.size)
    forward = np.vstack([similarity_transform(points, TEMPLATE), [0, 0, 1]])
    inverse = np.linalg.inv(forward)  # Pillow maps each output pixel back into the source
    return image.transform(
        (ALIGNED_SIZE, ALIGNED_SIZE), Image.Transform.AFFINE, tuple(inverse[:2].ravel()), Image.Resampling.BILINEAR
    )


class FaceEmbedder:
    """MobileFaceNet on aligned crops; the model's batch size is fixed, so a batch is padded to it."""

    def __init__(self, backend: CpuBackend):
        self.backend = backend
        self.batch = int(backend.inputs[0]["shape"][0])
        self.dimensions = int(backend.outputs[0]["shape"][-1])

    def embed(self, crops: list[Image.Image]) -> np.ndarray:
        """One L2-normalised float32 row per crop."""
        if not crops:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        pixels = (np.stack([np.asarray(crop, dtype=np.float32) for crop in crops]) - 127.5) / 128.0
        rows = []
        for start in range(0, len(pixels), self.batch):
            chunk = pixels[start : start + self.batch]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - len(chunk), axis=0)])
            (embeddings,) = self.backend.run(padded)
            rows.append(embeddings[: len(chunk)])
        vectors = np.concatenate(rows).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
