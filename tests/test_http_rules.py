"""The contract's error rules over real HTTP: status, `{"detail": ...}` body, and nothing changed."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

import pytest

from .conftest import PHOTOS

BODY_ROUTES = [
    ("POST", "/albums/create-album"),
    ("DELETE", "/albums/delete-album"),
    ("POST", "/albums/add-multiple-to-album"),
    ("DELETE", "/albums/remove-from-album"),
    ("PUT", "/albums/edit-album-description"),
    ("POST", "/images/images"),
    ("DELETE", "/images/delete-image"),
    ("POST", "/images/add-folder"),
    ("PUT", "/tag/people/{person_id}"),
    ("POST", "/tag/people/{person_id}/merge"),
    ("PUT", "/tag/faces/{face_id}"),
]


def assert_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


def test_openapi_lists_exactly_the_body_routes_we_check(client):
    document = client.get("/openapi.json").json()
    with_body = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert with_body == set(BODY_ROUTES)


@pytest.mark.parametrize("method,path", BODY_ROUTES)
def test_every_body_route_refuses_bad_bodies_the_same_way(client, method, path):
    path = path.replace("{person_id}", "1")
    client.post("/albums/create-album", json={"name": "Keep"})
    before = client.snapshot()
    headers = {"Content-Type": "application/json"}
    assert "JSON" in assert_error(client.request(method, path, data=b"{not json", headers=headers), 400)
    assert_error(client.request(method, path, data=b"[]", headers=headers), 400)
    assert_error(client.request(method, path, data=b"{}", headers=headers), 400)
    assert_error(client.request(method, path, data=b"", headers=headers), 400)
    assert "JSON" in assert_error(
        client.request(method, path, data=b"name=x", headers={"Content-Type": "text/plain"}), 415
    )
    assert_error(client.request(method, path, data=b"x" * (1024 * 1024 + 1), headers=headers), 413)
    assert client.snapshot() == before


def test_wrong_types_and_unknown_fields_are_400(client):
    before = client.snapshot()
    detail = assert_error(client.post("/images/images", json={"paths": "/not/a/list"}), 400)
    assert "paths" in detail
    assert_error(client.post("/images/images", json={"paths": [1, 2]}), 400)
    assert_error(client.post("/images/images", json={"paths": []}), 400)
    assert "Extra inputs" in assert_error(client.post("/albums/create-album", json={"name": "a", "colour": "red"}), 400)
    assert_error(client.post("/albums/create-album", json={"name": 5}), 400)
    assert_error(client.get("/images/all-images", params={"limit": "lots"}), 400)
    assert_error(client.get("/images/all-images", params={"offset": "-1"}), 400)
    assert client.snapshot() == before


def test_413_is_decided_from_the_header_without_reading_the_body(client):
    host, port = client.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/images/images")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()  # no body is ever sent: the answer must come from the header alone
    response = conn.getresponse()
    assert response.status == 413
    assert "limit" in json.loads(response.read())["detail"]
    conn.close()


def test_body_limit_is_configurable(start_appliance):
    client = start_appliance(max_body_bytes=2048)
    paths = [str(PHOTOS / "cat.png")] * 100
    assert_error(client.post("/images/images", json={"paths": paths}), 413)


def test_chunked_bodies_are_refused(client):
    def chunks():
        yield b'{"name": "chunked"}'

    assert_error(client.post("/albums/create-album", data=chunks(), headers={"Content-Type": "application/json"}), 411)
    assert client.get("/albums/view-all").json() == {"albums": []}


def test_unknown_routes_and_methods_answer_json(client):
    assert "No such route" in assert_error(client.get("/nope"), 404)
    assert_error(client.put("/albums/view-all"), 405)


@pytest.fixture
def links_out(library, tmp_path):
    """A photo outside the roots, reached from inside the library by a file link and a folder link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes((PHOTOS / "zidane.jpg").read_bytes())
    os.symlink(outside / "secret.jpg", library / "link.jpg")
    os.symlink(outside, library / "linked-dir")


@pytest.mark.usefixtures("links_out")
def test_paths_outside_the_roots_are_403(client, library):
    client.post("/albums/create-album", json={"name": "A"})
    before = client.snapshot()

    dotdot = str(library / ".." / "outside" / "secret.jpg")
    for raw in [dotdot, str(library / "link.jpg"), str(library / "linked-dir" / "secret.jpg"), "/etc/passwd"]:
        assert "outside the library" in assert_error(client.post("/images/images", json={"paths": [raw]}), 403)
        assert_error(client.delete("/images/delete-image", json={"path": raw}), 403)
        assert_error(client.get("/images/class-ids", params={"path": raw}), 403)
        assert_error(client.post("/albums/add-multiple-to-album", json={"album_name": "A", "paths": [raw]}), 403)
        assert_error(client.delete("/albums/remove-from-album", json={"album_name": "A", "path": raw}), 403)
    for folder in [str(library / ".."), str(library / "linked-dir"), "/"]:
        assert_error(client.post("/images/add-folder", json={"folder_path": folder}), 403)
    # one bad path among good ones refuses the whole request
    good = str(PHOTOS / "cat.png")
    assert_error(client.post("/images/images", json={"paths": [good, dotdot]}), 403)
    assert_error(client.post("/images/images", json={"paths": ["relative/cat.png"]}), 400)
    assert client.snapshot() == before


@pytest.mark.usefixtures("links_out")
def test_folder_scan_skips_links_that_leave_the_roots(client, library):
    (library / "real.jpg").write_bytes((PHOTOS / "zidane.jpg").read_bytes())
    progress = client.ingest(library)
    assert progress["total"] == 1
    assert client.get("/images/all-images").json()["images"] == [str(library / "real.jpg")]


OPEN_ROUTES = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/"), ("GET", "/static/{name}")}


def test_token_guards_every_route_but_health(start_appliance):
    token = "t0ken-with-enough-length"
    client = start_appliance(api_token=token)
    client.session.headers.pop("Authorization")
    assert client.get("/health").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    before = client.snapshot()
    # every operation of the document but the open ones: the token is checked before anything is parsed
    document = client.get("/openapi.json").json()
    guarded = [(m.upper(), p) for p, ops in document["paths"].items() for m in ops if (m.upper(), p) not in OPEN_ROUTES]
    assert len(guarded) >= 20
    for method, path in guarded:
        url = path.replace("{job_id}", "0" * 32).replace("{person_id}", "1").replace("{face_id}", "1")
        assert_error(client.request(method, url, json={}), 401)
    assert "token" in assert_error(client.get("/images/all-images"), 401)
    assert_error(client.post("/albums/create-album", json={"name": "x"}), 401)
    assert_error(client.get("/albums/view-all", headers={"Authorization": "Bearer wrong-token-value"}), 401)
    assert_error(client.get("/albums/view-all", headers={"Authorization": token}), 401)
    assert client.snapshot() == before
    assert client.get("/albums/view-all", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_openapi_documents_every_route_and_error(client):
    document = client.get("/openapi.json").json()
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 31
    assert document["paths"]["/images/jobs/{job_id}"]["get"]["parameters"][0]["in"] == "path"
    for _path, _method, operation in operations:
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    # no token on loopback: no 401 and no bearer security anywhere
    assert "401" not in document["paths"]["/albums/view-all"]["get"]["responses"]
    assert "securitySchemes" not in document["components"]
    assert all("security" not in operation for _, _, operation in operations)
    assert "409" in document["paths"]["/albums/create-album"]["post"]["responses"]
    assert "507" in document["paths"]["/albums/create-album"]["post"]["responses"]
    assert "200" in document["paths"]["/images/add-folder"]["post"]["responses"]
    assert list(document["paths"]["/images/thumbnail"]["get"]["responses"]["200"]["content"]) == ["image/jpeg"]


def test_openapi_has_bearer_security_when_a_token_is_configured(start_appliance):
    client = start_appliance(api_token="a-token-of-the-right-length")
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    view_all = document["paths"]["/albums/view-all"]["get"]
    assert view_all["security"] == [{"bearer": []}] and "401" in view_all["responses"]
    health = document["paths"]["/health"]["get"]
    assert "security" not in health and "401" not in health["responses"]


# -- hostile input found by schemathesis: each answered 500 before ------------------------------------------


def test_a_query_string_that_is_not_utf8_is_a_400(client):
    for path in ("/tag/clusters?x=%ff", "/images/all-images?offset=%ff", "/images/class-ids?path=%c3%28"):
        assert "UTF-8" in assert_error(client.get(path), 400)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/images/all-images?offset=1180591620717411303424"),
        ("GET", "/tag/clusters?min_size=1180591620717411303424"),
    ],
)
def test_integers_past_sqlites_range_are_a_400(client, method, path):
    assert_error(client.request(method, path), 400)


def test_a_person_id_past_sqlites_range_is_a_400(client):
    client.wait_for_job(client.post("/images/images", json={"paths": [str(PHOTOS / "amir_khan.png")]}).json()["job_id"])
    before = client.snapshot()
    assert before["people"], "a real person whose name must not change"
    assert_error(client.put(f"/tag/people/{2**70}", json={"name": "x"}), 400)
    assert_error(client.put("/tag/people/-1", json={"name": "x"}), 400)
    assert client.snapshot() == before


def test_a_path_with_a_name_over_255_bytes_is_a_400(client, library):
    long_path = str(library / ("a" * 300) / "b.jpg")
    before = client.snapshot()
    for answer in (
        client.get("/images/class-ids", params={"path": long_path}),
        client.post("/images/images", json={"paths": [long_path]}),
        client.post("/images/add-folder", json={"folder_path": str(library / ("é" * 200))}),
        client.request("DELETE", "/images/delete-image", json={"path": long_path}),
    ):
        assert "255 bytes" in assert_error(answer, 400)
    # a file whose name is the byte \xff exists; a JSON lone surrogate must not reach it (or a 500)
    (Path(os.fsdecode(os.fsencode(library) + b"/\xff.jpg"))).write_bytes((PHOTOS / "cat.png").read_bytes())
    lone_surrogate = b'{"paths": ["' + str(library).encode() + b'/\\udcff.jpg"]}'
    detail = assert_error(
        client.post("/images/images", data=lone_surrogate, headers={"Content-Type": "application/json"}), 400
    )
    assert "UTF-8" in detail or "surrogate" in detail
    assert client.snapshot() == before


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(client, library):
    from .conftest import make_images

    make_images(library, 2)
    bad = os.path.join(os.fsencode(library), b"caf\xe9.jpg")
    with open(bad, "wb") as f:
        f.write((library / "img_00000.jpg").read_bytes() + b"different")
    response = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert response.status_code == 202, response.text
    assert (response.json()["queued"], response.json()["skipped"]) == (2, 1)
    progress = client.wait_for_job(response.json()["job_id"])
    assert (progress["done"], progress["failed"]) == (2, 1)
    assert progress["failures"][0]["path"] == str(library) + "/caf\\xe9.jpg"
    assert "not valid UTF-8" in progress["failures"][0]["error"]


def test_the_unspecified_addresses_name_no_appliance(client):
    port = client.url.rsplit(":", 1)[1]
    for host in (f"0.0.0.0:{port}", f"[::]:{port}"):
        assert_error(client.get("/albums/view-all", headers={"Host": host}), 421)
