"""People a household can trust, over real HTTP with the real models: corrections (merge, move, "not this
person", names, hiding) are constraints that survive a full re-clustering and a re-analysis."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from .conftest import FACES, PHOTOS
from .test_faces import identity


@pytest.fixture
def household(start_appliance, library):
    """The ten LFW faces (four people) in the library, analysed."""
    for source in FACES.iterdir():
        shutil.copy(source, library / source.name)
    client = start_appliance(library_roots=[library])
    client.ingest(library)
    return client


def person_of(client, library, name: str) -> int:
    (face,) = client.get("/tag/faces", params={"path": str(library / name)}).json()["faces"]
    return face["person_id"]


def face_of(client, library, name: str) -> int:
    (face,) = client.get("/tag/faces", params={"path": str(library / name)}).json()["faces"]
    return face["face_id"]


def who(client) -> list[list[str]]:
    """Each shown person as the sorted identities of their photos."""
    clusters = client.get("/tag/clusters").json()["clusters"]
    return sorted(sorted(identity(path) for path in paths) for paths in clusters.values())


def names(client) -> dict[int, str | None]:
    return {
        p["person_id"]: p["name"] for p in client.get("/tag/people", params={"include_hidden": True}).json()["people"]
    }


def full_recluster(client) -> None:
    assert client.appliance.worker.faces.recluster(client.appliance.db, everything=True) is not None


def analyse_again(start_appliance, client, library, **changed):
    """Restart with a setting that changes what analysis stores: every image is analysed again."""
    client.appliance.stop()
    client = start_appliance(library_roots=[library], **changed)
    job = client.get("/health").json()["reanalysis"]
    assert job is not None and job["total"] == 10
    assert client.wait_for_job(job["job_id"], timeout=120)["done"] == 10
    return client


def test_a_merge_and_its_name_survive_reclustering_and_reanalysis(household, library, start_appliance):
    client = household
    aaron, abdullah = (
        person_of(client, library, "Aaron_Peirsol_0001.jpg"),
        person_of(client, library, "Abdullah_0002.jpg"),
    )
    assert client.put(f"/tag/people/{abdullah}", json={"name": "Abdullah"}).status_code == 200
    response = client.post(f"/tag/people/{aaron}/merge", json={"people": [abdullah]})
    assert response.status_code == 200, response.text
    merged = [sorted(["Aaron_Peirsol"] * 2 + ["Abdullah"] * 3), ["Aicha_El_Ouafi"] * 2, ["Frank_Solich"] * 3]
    assert who(client) == sorted(merged)
    assert names(client)[aaron] == "Abdullah", "the merged person takes the only name"
    full_recluster(client)
    assert who(client) == sorted(merged)
    client = analyse_again(start_appliance, client, library, face_min_score=0.51)
    assert who(client) == sorted(merged)
    assert names(client)[aaron] == "Abdullah" and person_of(client, library, "Abdullah_0003.jpg") == aaron


def test_a_moved_face_stays_moved(household, library, start_appliance):
    client = household
    aicha = person_of(client, library, "Aicha_El_Ouafi_0001.jpg")
    frank_face = face_of(client, library, "Frank_Solich_0004.jpg")
    response = client.put(f"/tag/faces/{frank_face}", json={"person_id": aicha})
    assert response.status_code == 200, response.text
    expected = sorted(
        [["Aaron_Peirsol"] * 2, ["Abdullah"] * 3, ["Aicha_El_Ouafi"] * 2 + ["Frank_Solich"], ["Frank_Solich"] * 2]
    )
    assert who(client) == sorted(sorted(p) for p in expected)
    full_recluster(client)
    assert who(client) == sorted(sorted(p) for p in expected)
    client = analyse_again(start_appliance, client, library, face_min_score=0.51)
    assert person_of(client, library, "Frank_Solich_0004.jpg") == aicha


def test_not_this_person_holds(household, library, start_appliance):
    client = household
    abdullah = person_of(client, library, "Abdullah_0004.jpg")
    face = face_of(client, library, "Abdullah_0004.jpg")
    assert client.put(f"/tag/faces/{face}", json={"person_id": None}).status_code == 200
    assert person_of(client, library, "Abdullah_0004.jpg") is None
    unassigned = client.get("/tag/unassigned-faces").json()["faces"]
    assert [f["face_id"] for f in unassigned] == [face]
    full_recluster(client)
    assert person_of(client, library, "Abdullah_0004.jpg") != abdullah
    client = analyse_again(start_appliance, client, library, face_min_score=0.51)
    assert person_of(client, library, "Abdullah_0004.jpg") != abdullah
    assert len(client.get("/tag/clusters").json()["clusters"][str(abdullah)]) == 2


def test_a_name_stays_with_the_faces_it_was_given_to(household, library, start_appliance):
    client = household
    frank = person_of(client, library, "Frank_Solich_0001.jpg")
    client.put(f"/tag/people/{frank}", json={"name": "Frank"})
    full_recluster(client)
    client = analyse_again(start_appliance, client, library, face_min_score=0.51)
    assert names(client)[frank] == "Frank"
    assert all(person_of(client, library, f"Frank_Solich_000{n}.jpg") == frank for n in (1, 2, 4))


def test_hidden_people_are_left_out(household, library):
    client = household
    aaron = person_of(client, library, "Aaron_Peirsol_0001.jpg")
    assert client.put(f"/tag/people/{aaron}", json={"hidden": True}).status_code == 200
    assert str(aaron) not in client.get("/tag/clusters").json()["clusters"]
    assert aaron not in [p["person_id"] for p in client.get("/tag/people").json()["people"]]
    everyone = client.get("/tag/people", params={"include_hidden": True}).json()["people"]
    assert [p["hidden"] for p in everyone if p["person_id"] == aaron] == [True]
    client.put(f"/tag/people/{aaron}", json={"hidden": False})
    assert str(aaron) in client.get("/tag/clusters").json()["clusters"]


def test_a_hidden_person_is_not_found_by_name(household, library):
    client = household
    aaron = person_of(client, library, "Aaron_Peirsol_0001.jpg")
    client.put(f"/tag/people/{aaron}", json={"name": "Zebulon"})
    assert client.get("/images/search", params={"q": "zebulon"}).json()["total"] > 0
    client.put(f"/tag/people/{aaron}", json={"hidden": True})
    found = client.get("/images/search", params={"q": "zebulon"}).json()
    assert found["total"] == 0 and "person" not in str(found)


def test_a_face_thumbnail_is_a_square_crop_of_that_face(client):
    client.ingest(PHOTOS)
    faces = client.get("/tag/faces", params={"path": str(PHOTOS / "three_khans.png")}).json()["faces"]
    assert len(faces) == 3 and all(f["name"] is None and f["good"] for f in faces)
    response = client.get(f"/tag/faces/{faces[0]['face_id']}/thumbnail")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (160, 160)
    people = client.get("/tag/people").json()["people"]
    assert all(isinstance(p["cover_face"], int) and p["cover"] for p in people)


def test_people_corrections_refuse_what_does_not_exist(household, library):
    client = household
    aaron = person_of(client, library, "Aaron_Peirsol_0001.jpg")
    before = client.snapshot()
    assert client.post("/tag/people/999999/merge", json={"people": [aaron]}).status_code == 404
    assert client.post(f"/tag/people/{aaron}/merge", json={"people": [999999]}).status_code == 404
    assert client.post(f"/tag/people/{aaron}/merge", json={"people": [aaron]}).status_code == 400
    assert client.put("/tag/faces/999999", json={"person_id": aaron}).status_code == 404
    assert (
        client.put(
            f"/tag/faces/{face_of(client, library, 'Abdullah_0002.jpg')}", json={"person_id": 999999}
        ).status_code
        == 404
    )
    assert client.put(f"/tag/people/{aaron}", json={}).status_code == 400
    assert client.get("/tag/faces/999999/thumbnail").status_code == 404
    assert client.snapshot() == before
