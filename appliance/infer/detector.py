"""COCO object detectors: YOLOv8n int8 (default) and SSD MobileNet v1 quant, behind one `detect` method."""

from __future__ import annotations

import ast
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .runtime import CpuBackend


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 as fractions of the image's width and height


def labels_from_model(path: Path) -> list[str]:
    """Class names from the zip the exporters append to the .tflite file (Ultralytics or TF Lite labelmap)."""
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
        if "temp_meta.txt" in names:
            meta = ast.literal_eval(bundle.read("temp_meta.txt").decode())
            return [meta["names"][i] for i in sorted(meta["names"])]
        if "labelmap.txt" in names:
            return bundle.read("labelmap.txt").decode().splitlines()
    raise ValueError(f"{path} carries no class names")


def quantise(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    dtype = detail["dtype"]
    if not scale:
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantise(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if not scale:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * scale


def intersection_over_union(boxes: np.ndarray, best: int, others: np.ndarray) -> np.ndarray:
    """IoU of box `best` with each box in `others` (indices); boxes are rows of x1, y1, x2, y2."""
    x1 = np.maximum(boxes[best, 0], boxes[others, 0])
    y1 = np.maximum(boxes[best, 1], boxes[others, 1])
    x2 = np.minimum(boxes[best, 2], boxes[others, 2])
    y2 = np.minimum(boxes[best, 3], boxes[others, 3])
    overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return overlap / (areas[best] + areas[others] - overlap + 1e-9)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes kept, best first."""
    order = np.argsort(-scores)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        order = rest[intersection_over_union(boxes, best, rest) <= iou_threshold]
    return keep


class ObjectDetector:
    """Base of the detectors: `detect` takes an upright RGB image and returns fractional boxes."""

    default_threshold: float

    def __init__(self, backend: CpuBackend, labels: list[str]):
        self.backend = backend
        self.labels = labels
        _, self.height, self.width, _ = backend.inputs[0]["shape"]

    def detect(self, image: Image.Image, threshold: float) -> list[Detection]:
        raise NotImplementedError


class YoloDetector(ObjectDetector):
    """YOLOv8: letterboxed input, one [4 + classes, anchors] output, class-wise NMS done here."""

    default_threshold = 0.30
    iou_threshold = 0.45

    def detect(self, image: Image.Image, threshold: float) -> list[Detection]:
        width, height = image.size
        scale = min(self.width / width, self.height / height)
        resized = (max(1, round(width * scale)), max(1, round(height * scale)))
        pad_x, pad_y = (self.width - resized[0]) // 2, (self.height - resized[1]) // 2
        canvas = Image.new("RGB", (self.width, self.height), (114, 114, 114))
        canvas.paste(image.resize(resized, Image.Resampling.BILINEAR), (pad_x, pad_y))
        pixels = np.asarray(canvas, dtype=np.float32)[None] / 255.0
        (raw,) = self.backend.run(quantise(pixels, self.backend.inputs[0]))
        predictions = dequantise(raw[0], self.backend.outputs[0]).T  # [anchors, 4 + classes]
        class_scores = predictions[:, 4:]
        classes = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(classes)), classes]
        keep = scores >= threshold
        if not keep.any():
            return []
        centre_x, centre_y, box_w, box_h = (predictions[keep, i] for i in range(4))
        # From fractions of the letterbox to fractions of the image.
        x1 = (centre_x - box_w / 2) * self.width
        y1 = (centre_y - box_h / 2) * self.height
        x2 = (centre_x + box_w / 2) * self.width
        y2 = (centre_y + box_h / 2) * self.height
        boxes = np.stack(
            [
                (x1 - pad_x) / (resized[0]),
                (y1 - pad_y) / (resized[1]),
                (x2 - pad_x) / (resized[0]),
                (y2 - pad_y) / (resized[1]),
            ],
            axis=1,
        ).clip(0.0, 1.0)
        classes, scores = classes[keep], scores[keep]
        # Class-wise NMS in one pass: shift each class's boxes into a space of its own.
        kept = non_max_suppression(boxes + classes[:, None] * 2.0, scores, self.iou_threshold)
        return [Detection(self.labels[classes[i]], float(scores[i]), tuple(map(float, boxes[i]))) for i in kept]


class SsdDetector(ObjectDetector):
    """SSD MobileNet v1: stretched input, post-processing (NMS included) built into the model."""

    default_threshold = 0.47

    def detect(self, image: Image.Image, threshold: float) -> list[Detection]:
        resized = image.resize((self.width, self.height), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.uint8)[None]
        boxes, classes, scores, count = self.backend.run(pixels)
        found = []
        for i in range(int(count[0])):
            score = float(scores[0, i])
            label = self.labels[int(classes[0, i])]
            if score < threshold or label == "???":
                continue
            y1, x1, y2, x2 = (float(v) for v in np.clip(boxes[0, i], 0.0, 1.0))
            found.append(Detection(label, score, (x1, y1, x2, y2)))
        return found


DETECTORS: dict[str, type[ObjectDetector]] = {"yolov8n": YoloDetector, "ssd_mobilenet_v1": SsdDetector}
