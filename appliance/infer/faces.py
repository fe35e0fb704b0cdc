"""Face detection with MediaPipe's BlazeFace models: SSD anchors, box and keypoint decoding, weighted NMS.

The anchor layout and decoding follow MediaPipe's face_detection graphs (SsdAnchorsCalculator and
TensorsToDetectionsCalculator options): the short-range model has 896 anchors on 16x16 and 8x8 grids,
the full-range model 2304 anchors on a 48x48 grid; every anchor is a unit square at its cell's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .detector import intersection_over_union
from .runtime import CpuBackend

# Grid strides and anchors per cell, by input size: (stride, anchors per cell) for each feature map.
ANCHOR_LAYOUTS = {128: [(8, 2), (16, 6)], 192: [(4, 1)]}
KEYPOINTS = 6  # eyes (subject's right, left), nose tip, mouth centre, ear tragions (right, left)


@dataclass(frozen=True)
class Face:
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, fractions of the image
    keypoints: tuple[tuple[float, float], ...]  # the six BlazeFace keypoints, fractions of the image


def make_anchors(input_size: int) -> np.ndarray:
    """Anchor centres as rows of (x, y), fractions of the input."""
    centres = []
    for stride, per_cell in ANCHOR_LAYOUTS[input_size]:
        cells = input_size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou_threshold: float) -> list[Face]:
    """MediaPipe's blending NMS: overlapping candidates are averaged, weighted by score (steadier boxes)."""
    order = np.argsort(-scores)
    faces = []
    while order.size:
        best = order[0]
        iou = intersection_over_union(boxes, best, order)
        group = order[iou > iou_threshold]
        weights = scores[group] / scores[group].sum()
        box = (boxes[group] * weights[:, None]).sum(axis=0)
        keypoints = (points[group] * weights[:, None, None]).sum(axis=0)
        faces.append(
            Face(
                float(scores[best]),
                tuple(float(v) for v in box),
                tuple((float(x), float(y)) for x, y in keypoints),
            )
        )
        order = order[iou <= iou_threshold]
    return faces


class BlazeFaceDetector:
    """Finds faces in an upright RGB image; boxes and keypoints come back as fractions of that image."""

    def __init__(self, backend: CpuBackend, min_score: float = 0.5, iou_threshold: float = 0.3):
        self.backend = backend
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.size = int(backend.inputs[0]["shape"][1])
        self.anchors = make_anchors(self.size)
        shapes = [tuple(detail["shape"]) for detail in backend.outputs]
        self.regressor_index = next(i for i, shape in enumerate(shapes) if shape[-1] == 4 + 2 * KEYPOINTS)
        self.score_index = 1 - self.regressor_index

    def detect(self, image: Image.Image) -> list[Face]:
        # Letterbox onto a square, as MediaPipe does, so faces keep their proportions.
        scale = self.size / max(image.size)
        resized = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        pad_x, pad_y = (self.size - resized[0]) / 2, (self.size - resized[1]) / 2
        canvas = Image.new("RGB", (self.size, self.size))
        canvas.paste(image.resize(resized, Image.Resampling.BILINEAR), (int(pad_x), int(pad_y)))
        pixels = np.asarray(canvas, dtype=np.float32)[None] / 127.5 - 1.0
        outputs = self.backend.run(pixels)
        raw, logits = outputs[self.regressor_index][0], outputs[self.score_index][0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / self.size, scores[keep], self.anchors[keep]
        centres = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        points = raw[:, 4:].reshape(-1, KEYPOINTS, 2) + anchors[:, None, :]
        # From fractions of the letterbox to fractions of the image.
        offset = np.array([pad_x / self.size, pad_y / self.size], dtype=np.float32)
        extent = np.array([resized[0] / self.size, resized[1] / self.size], dtype=np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) - offset) / extent).reshape(-1, 4).clip(0.0, 1.0)
        points = (points - offset) / extent
        return weighted_nms(boxes, scores, points, self.iou_threshold)
