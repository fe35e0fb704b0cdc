"""The seven /albums routes over real HTTP, success shapes and error rules."""

from __future__ import annotations

import pytest

from .conftest import PHOTOS

CAT = str(PHOTOS / "cat.png")
BIRD = str(PHOTOS / "bird.bmp")
ZIDANE = str(PHOTOS / "zidane.jpg")


@pytest.fixture
def indexed(client):
    """A client whose appliance has indexed three of the test photos."""
    response = client.post("/images/images", json={"paths": [CAT, BIRD, ZIDANE]})
    assert response.status_code == 202
    assert client.wait_for_job(response.json()["job_id"])["done"] == 3
    return client


def test_create_view_edit_delete(client):
    response = client.post("/albums/create-album", json={"name": "  Holidays ", "description": "Summer"})
    assert response.status_code == 201
    assert response.json() == {"message": "Album 'Holidays' created successfully"}

    response = client.get("/albums/view-album", params={"album_name": "Holidays"})
    assert response.status_code == 200
    assert response.json() == {"album_name": "Holidays", "description": "Summer", "photos": []}

    response = client.put("/albums/edit-album-description", json={"name": "Holidays", "description": "Winter"})
    assert response.status_code == 200 and "message" in response.json()
    # album_name is accepted as an alias of name
    response = client.put("/albums/edit-album-description", json={"album_name": "Holidays", "description": "Spring"})
    assert response.status_code == 200
    assert client.get("/albums/view-album", params={"album_name": "Holidays"}).json()["description"] == "Spring"

    albums = client.get("/albums/view-all").json()["albums"]
    assert [(a["album_name"], a["description"], a["image_paths"]) for a in albums] == [("Holidays", "Spring", [])]
    assert albums[0]["created_at"]

    response = client.delete("/albums/delete-album", json={"name": "Holidays"})
    assert response.status_code == 200 and "message" in response.json()
    assert client.get("/albums/view-all").json() == {"albums": []}


def test_create_without_description_gives_null(client):
    assert client.post("/albums/create-album", json={"name": "Plain"}).status_code == 201
    assert client.get("/albums/view-album", params={"album_name": "Plain"}).json()["description"] is None


def test_duplicate_album_is_409_and_changes_nothing(client):
    assert client.post("/albums/create-album", json={"name": "Family", "description": "a"}).status_code == 201
    before = client.snapshot()
    response = client.post("/albums/create-album", json={"name": "Family", "description": "b"})
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    assert client.snapshot() == before
    # names are unique case-sensitively
    assert client.post("/albums/create-album", json={"name": "family"}).status_code == 201


@pytest.mark.parametrize("name", ["", "   ", "x" * 129])
def test_bad_album_names_are_400(client, name):
    before = client.snapshot()
    response = client.post("/albums/create-album", json={"name": name})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid request: name")
    assert client.snapshot() == before


def test_add_keeps_order_and_readding_is_a_noop(indexed):
    client = indexed
    client.post("/albums/create-album", json={"name": "Best"})
    response = client.post("/albums/add-multiple-to-album", json={"album_name": "Best", "paths": [ZIDANE, CAT]})
    assert response.status_code == 200
    assert response.json()["added"] == 2
    response = client.post("/albums/add-multiple-to-album", json={"album_name": "Best", "paths": [CAT, BIRD]})
    assert response.json()["added"] == 1
    photos = client.get("/albums/view-album", params={"album_name": "Best"}).json()["photos"]
    assert photos == [ZIDANE, CAT, BIRD]
    assert client.get("/albums/view-all").json()["albums"][0]["image_paths"] == [ZIDANE, CAT, BIRD]


def test_add_with_one_unindexed_path_adds_nothing(indexed):
    client = indexed
    client.post("/albums/create-album", json={"name": "Best"})
    before = client.snapshot()
    unindexed = str(PHOTOS / "cat.bmp")
    response = client.post("/albums/add-multiple-to-album", json={"album_name": "Best", "paths": [CAT, unindexed]})
    assert response.status_code == 400
    assert unindexed in response.json()["detail"] and CAT not in response.json()["detail"]
    assert client.snapshot() == before


def test_add_to_unknown_album_is_404(indexed):
    before = indexed.snapshot()
    response = indexed.post("/albums/add-multiple-to-album", json={"album_name": "Nope", "paths": [CAT]})
    assert response.status_code == 404
    assert indexed.snapshot() == before


def test_remove_from_album(indexed):
    client = indexed
    client.post("/albums/create-album", json={"name": "Best"})
    client.post("/albums/add-multiple-to-album", json={"album_name": "Best", "paths": [CAT, BIRD]})
    response = client.delete("/albums/remove-from-album", json={"album_name": "Best", "path": CAT})
    assert response.status_code == 200
    assert client.get("/albums/view-album", params={"album_name": "Best"}).json()["photos"] == [BIRD]
    # the image stays indexed
    assert CAT in client.get("/images/all-images").json()["images"]

    before = client.snapshot()
    assert client.delete("/albums/remove-from-album", json={"album_name": "Best", "path": CAT}).status_code == 404
    assert client.delete("/albums/remove-from-album", json={"album_name": "No", "path": BIRD}).status_code == 404
    assert client.snapshot() == before


def test_unknown_album_is_404_everywhere(client):
    before = client.snapshot()
    assert client.get("/albums/view-album", params={"album_name": "Ghost"}).status_code == 404
    assert client.delete("/albums/delete-album", json={"name": "Ghost"}).status_code == 404
    response = client.put("/albums/edit-album-description", json={"name": "Ghost", "description": "x"})
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no album named 'Ghost'."}
    assert client.snapshot() == before


def test_view_album_without_name_is_400(client):
    response = client.get("/albums/view-album")
    assert response.status_code == 400
    assert "album_name" in response.json()["detail"]
