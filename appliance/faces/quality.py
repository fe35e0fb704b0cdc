"""Whether a detected face is good enough to seed or bridge a person: big enough, frontal enough, sure enough.

Measured on ../shared/testdata (faces and photos, at the 1280 px analysis size): every face there has eyes
21-105 px apart, a detector score of 0.60-0.94 and a yaw of at most 0.39 (the nose's offset from the eyes'
midpoint, in eye distances); the faces of a 12-person group photo have eyes about 12 px apart and embed badly.
"""

from __future__ import annotations

import numpy as np

from ..infer.faces import Face

MIN_EYE_PIXELS = 16.0
MIN_SCORE = 0.55
MAX_YAW = 0.5  # beyond, the face is turned aside (a profile): its embedding says little


def is_good(face: Face, width: int, height: int) -> bool:
    """`width`, `height`: the size of the image the face was found in (its keypoints are fractions of it)."""
    points = np.asarray(face.keypoints, np.float64) * (width, height)
    right_eye, left_eye, nose = points[0], points[1], points[2]
    eyes = float(np.linalg.norm(left_eye - right_eye))
    if eyes < MIN_EYE_PIXELS or face.score < MIN_SCORE:
        return False
    yaw = abs(nose[0] - (right_eye[0] + left_eye[0]) / 2) / eyes
    return yaw <= MAX_YAW
