"""Object detection with the real models on the real test photos, checked against testdata/README.md."""

from __future__ import annotations

import pytest

from .conftest import PHOTOS

# photo: (classes that must be found, classes that may also be found), from the test photos' README.
EXPECTED = {
    "000000000009.jpg": ({"bowl", "broccoli"}, {"orange"}),
    "000000000025.jpg": ({"giraffe"}, set()),
    "000000000030.jpg": ({"vase"}, {"potted plant"}),
    "000000000034.jpg": ({"zebra"}, set()),
    "amir_khan.png": ({"person"}, set()),
    "salman_khan.png": ({"person"}, set()),
    "three_khans.png": ({"person"}, set()),
    "test_2_faces.png": ({"person"}, set()),
    "zidane.jpg": ({"person", "tie"}, set()),
    "grace_hopper.bmp": ({"person", "tie"}, set()),
    "cat.png": ({"cat"}, set()),
    "cat (copy).png": ({"cat"}, set()),
    "cat.bmp": ({"cat"}, set()),
    "bird.bmp": ({"bird"}, set()),
    "empty.png": (set(), set()),
}
PEOPLE = {"three_khans.png": 3, "test_2_faces.png": 2, "zidane.jpg": 2, "amir_khan.png": 1}

# SSD MobileNet v1 scores zidane's tie 0.461, exactly what it gives a sandwich that is not in 000000000009.jpg:
# no threshold finds the one without the other, so at its calibrated 0.47 the tie is the one thing it misses.
SSD_MISSES = {"zidane.jpg": {"tie"}}


@pytest.mark.parametrize("detector,misses", [("yolov8n", {}), ("ssd_mobilenet_v1", SSD_MISSES)])
def test_detected_classes_match_the_photos(start_appliance, detector, misses):
    client = start_appliance(detector=detector)
    client.ingest(PHOTOS)
    found = client.get("/images/all-image-objects").json()["data"]
    assert set(found) == {str(PHOTOS / name) for name in EXPECTED}
    for name, (required, allowed) in EXPECTED.items():
        classes = found[str(PHOTOS / name)]
        assert classes == sorted(set(classes)), name
        assert required - misses.get(name, set()) <= set(classes), (name, classes)
        assert set(classes) <= required | allowed, (name, classes)
    for name, missed in misses.items():
        assert not missed & set(found[str(PHOTOS / name)])


def test_class_ids_gives_boxes_scores_and_people(start_appliance):
    client = start_appliance()
    client.ingest(PHOTOS)
    threshold = client.get("/health").json()["models"]["object_threshold"]
    for name, people in PEOPLE.items():
        body = client.get("/images/class-ids", params={"path": str(PHOTOS / name)}).json()
        assert body["status"] == "done"
        persons = [o for o in body["objects"] if o["label"] == "person"]
        assert len(persons) == people, (name, persons)
        for detection in body["objects"]:
            x1, y1, x2, y2 = detection["box"]
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            assert threshold <= detection["score"] <= 1
    # the three Khans stand side by side: three person boxes, left to right, barely overlapping
    body = client.get("/images/class-ids", params={"path": str(PHOTOS / "three_khans.png")}).json()
    boxes = sorted(o["box"] for o in body["objects"] if o["label"] == "person")
    assert boxes[0][2] <= boxes[1][0] + 0.1 and boxes[1][2] <= boxes[2][0] + 0.1
