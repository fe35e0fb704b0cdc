"""The analysis of one image as a plain sequence of stages: decode -> metadata -> thumbnail -> ...

Each stage takes what the previous one produced; the file is decoded once, at the size the models need.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from .config import Settings, resolve_models_dir
from .decode import DecodeBudget, decode
from .decode import DecodeError as DecodeError  # ingest catches it from here
from .faces.quality import is_good
from .infer.detector import DETECTORS, Detection, ObjectDetector, labels_from_model
from .infer.embedder import FaceEmbedder, align
from .infer.faces import BlazeFaceDetector, Face
from .infer.runtime import RUNTIME, ModelLoader
from .models import load_manifest
from .thumbnails import thumbnail_path, write_thumbnail


@dataclass
class Analysis:
    width: int
    height: int
    taken_at: str | None
    objects: list[Detection]
    faces: list[Face]
    face_vectors: np.ndarray  # one L2-normalised row per face
    face_good: list[bool]  # per face: good enough to seed or bridge a person (faces/quality.py)


class Pipeline:
    """One worker's analysis of one image: its own interpreters, the stages in order."""

    def __init__(
        self,
        settings: Settings,
        thumbnails_dir: Path,
        detector: ObjectDetector,
        object_threshold: float,
        face_detector: BlazeFaceDetector,
        embedder: FaceEmbedder,
        budget: DecodeBudget,
    ):
        self.settings = settings
        self.thumbnails_dir = thumbnails_dir
        self.detector = detector
        self.object_threshold = object_threshold
        self.face_detector = face_detector
        self.embedder = embedder
        self.budget = budget

    def analyse(self, file: BinaryIO, content_hash: str) -> Analysis:
        decoded = decode(file, self.settings.max_image_pixels, self.settings.analysis_size, self.budget)
        write_thumbnail(decoded.pixels, thumbnail_path(self.thumbnails_dir, content_hash), self.settings.thumbnail_size)
        objects = self.detector.detect(decoded.pixels, self.object_threshold)
        faces = self.face_detector.detect(decoded.pixels)
        faces += faces_in_people(self.face_detector, decoded.pixels, objects, faces)
        vectors = self.embedder.embed([align(decoded.pixels, face) for face in faces])
        good = [is_good(face, *decoded.pixels.size) for face in faces]
        return Analysis(decoded.width, decoded.height, decoded.taken_at, objects, faces, vectors, good)


def faces_in_people(
    face_detector: BlazeFaceDetector, image: Image.Image, objects: list[Detection], found: list[Face]
) -> list[Face]:
    """A second look where it pays: the top of each person box in which the whole-image pass found no face.

    On a 12 MP group photo of 12 small people (faces ~30 px at the analysis size) the whole-image pass found
    none, this pass 11 (the twelfth person was not detected as one), 3x3 tiles at most 10 for similar cost;
    on the test photos every person already has a face, so it costs nothing there.
    """
    width, height = image.size
    more: list[Face] = []
    for person in (o for o in objects if o.label == "person"):
        x1, y1, x2, y2 = person.box
        if any(x1 <= (f.box[0] + f.box[2]) / 2 <= x2 and y1 <= (f.box[1] + f.box[3]) / 2 <= y2 for f in found + more):
            continue
        # The head is at the top: a square as wide as the person (or the whole box if it is wider than tall).
        box_w, box_h = x2 - x1, min(y2 - y1, 2.5 * (x2 - x1) * width / height)
        crop = image.crop((round(x1 * width), round(y1 * height), round(x2 * width), round((y1 + box_h) * height)))
        if min(crop.size) < 8:
            continue
        for face in face_detector.detect(crop):
            more.append(
                Face(
                    face.score,
                    (
                        x1 + face.box[0] * box_w,
                        y1 + face.box[1] * box_h,
                        x1 + face.box[2] * box_w,
                        y1 + face.box[3] * box_h,
                    ),
                    tuple((x1 + px * box_w, y1 + py * box_h) for px, py in face.keypoints),
                )
            )
    return more


def analysis_fingerprint(facts: dict) -> str:
    """A short name for what analysed an image: the models (by checksum, not by accelerator: an Edge TPU build
    finds the same) and the settings that change stored results. Images of another fingerprint are analysed
    again in the background."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


class PipelineFactory:
    """Checks every model once at start-up (file, sha256, accelerator), then builds a Pipeline per worker."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.models_dir = resolve_models_dir(settings)
        manifest = load_manifest()
        # One thread per interpreter: images are analysed in parallel instead, which scales better.
        self.loader = ModelLoader(self.models_dir, settings.accelerator, threads=1)
        self.detector_spec = manifest[settings.detector]
        # The full-range model on the whole image found every face in the test photos; the short-range
        # one added false faces (a zebra, a cat) and missed one of zidane.jpg's, so it is not used.
        self.face_spec = manifest["blazeface_full_range"]
        self.embedder_spec = manifest[settings.embedder]
        for spec in (self.detector_spec, self.face_spec, self.embedder_spec):
            self.loader.prepare(spec)
        self.face_dimensions = self.embedder_spec.dimensions
        self.detector_class = DETECTORS[settings.detector]
        self.detector_labels = labels_from_model(self.models_dir / self.detector_spec.file)
        self.object_threshold = settings.object_threshold or self.detector_class.default_threshold
        self.budget = DecodeBudget(settings.decode_budget_mib << 20)  # one for all workers: memory is shared
        self.fingerprint = analysis_fingerprint(
            {
                "detector": [settings.detector, self.detector_spec.sha256, self.object_threshold],
                "faces": [self.face_spec.sha256, settings.face_min_score],
                "embedder": [settings.embedder, self.embedder_spec.sha256],
                "analysis_size": settings.analysis_size,
            }
        )

    def __call__(self) -> Pipeline:
        return Pipeline(
            self.settings,
            self.settings.data_dir / "thumbnails",
            self.detector_class(self.loader.open(self.detector_spec), self.detector_labels),
            self.object_threshold,
            BlazeFaceDetector(self.loader.open(self.face_spec), self.settings.face_min_score),
            FaceEmbedder(self.loader.open(self.embedder_spec)),
            self.budget,
        )

    def describe(self) -> dict:
        return {
            "runtime": RUNTIME,
            "models_dir": str(self.models_dir),
            "accelerators": self.loader.accelerators(),
            "object_threshold": self.object_threshold,
        }
