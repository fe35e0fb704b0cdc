"""The large listings over real HTTP: rendered by SQLite byte for byte as before, answered with 304 when the
client has them, and each kept until a write to what it shows (an ingest leaves the albums alone)."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import random
import shutil
import threading
import time
import types
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from appliance import albums, catalog, chunks
from appliance.api.albums import AlbumPhotos, AllAlbums
from appliance.api.images import AllImageObjects, ImageList
from appliance.api.routing import ResponseCache, Route, cached_answer
from appliance.datadir import DATABASE_FILE
from appliance.db import Database, connect, sqlite_module
from appliance.migrations import MIGRATIONS

from .conftest import PHOTOS, make_images

CAT = str(PHOTOS / "cat.png")
BIRD = str(PHOTOS / "bird.bmp")
ZIDANE = str(PHOTOS / "zidane.jpg")
# Everything JSON must escape, and what it must not.
TRICKY = ['/lib/a "quoted" \\ back.jpg', "/lib/tab\there.jpg", "/lib/ctl\x01\x1f\x7f.jpg", "/lib/ünï/€ 𝄞.jpg",
          "/lib/line\u2028sep.jpg", "/lib/z/plain.jpg"]  # fmt: skip


# -- the renderings before this change, verbatim, as the reference --------------------------------------------

LISTED = "status != 'failed' AND missing_since IS NULL"
ANALYSED = "images.status = 'done' AND images.missing_since IS NULL"


def before_all_images(conn, offset: int = 0, limit: int | None = None) -> bytes:
    rows = conn.execute(
        f"SELECT path FROM images WHERE {LISTED} ORDER BY path LIMIT ? OFFSET ?",
        (-1 if limit is None else limit, offset),
    )
    paths = [row[0] for row in rows]
    if limit is None and offset == 0:
        return ImageList(images=paths).model_dump_json(exclude_unset=True).encode()
    (total,) = conn.execute(f"SELECT count(*) FROM images WHERE {LISTED}").fetchone()
    return ImageList(images=paths, total=total).model_dump_json(exclude_unset=True).encode()


def before_view_album(conn, name: str) -> bytes:
    album = conn.execute("SELECT id, name, description FROM albums WHERE name = ?", (name,)).fetchone()
    photos = conn.execute(
        "SELECT images.path FROM album_images JOIN images ON images.id = album_images.image_id"
        " WHERE album_id = ? AND images.missing_since IS NULL ORDER BY position",
        (album["id"],),
    ).fetchall()
    body = AlbumPhotos(album_name=album["name"], description=album["description"], photos=[r[0] for r in photos])
    return body.model_dump_json(exclude_unset=True).encode()


def before_view_all(conn) -> bytes:
    found = {
        row["id"]: {"album_name": row["name"], "description": row["description"], "image_paths": [],
                    "created_at": row["created_at"]}
        for row in conn.execute("SELECT id, name, description, created_at FROM albums ORDER BY name")
    }  # fmt: skip
    for album_id, path in conn.execute(
        "SELECT album_id, images.path FROM album_images JOIN images ON images.id = album_images.image_id"
        " WHERE images.missing_since IS NULL ORDER BY album_id, position"
    ):
        found[album_id]["image_paths"].append(path)
    return AllAlbums(albums=list(found.values())).model_dump_json(exclude_unset=True).encode()


def before_all_image_objects(conn) -> bytes:
    result = {row[0]: [] for row in conn.execute(f"SELECT path FROM images WHERE {ANALYSED} ORDER BY path")}
    for path, label in conn.execute(
        "SELECT DISTINCT images.path, objects.label FROM objects JOIN images ON images.id = objects.image_id"
        f" WHERE {ANALYSED} ORDER BY images.path, objects.label"
    ):
        result[path].append(label)
    return AllImageObjects(data=result).model_dump_json(exclude_unset=True).encode()


def expected(client) -> dict[str, bytes]:
    """Every listing URL of the library as it is now, with the body the old code gave."""
    conn = connect(client.data_dir / DATABASE_FILE)
    try:
        bodies = {
            "/images/all-images": before_all_images(conn),
            "/images/all-images?offset=1&limit=2": before_all_images(conn, 1, 2),
            "/images/all-images?offset=3": before_all_images(conn, 3),
            "/albums/view-all": before_view_all(conn),
            "/images/all-image-objects": before_all_image_objects(conn),
        }
        for (name,) in conn.execute("SELECT name FROM albums ORDER BY name"):
            bodies[album_url(name)] = before_view_album(conn, name)
        return bodies
    finally:
        conn.close()


def album_url(name: str) -> str:
    return "/albums/view-album?" + urllib.parse.urlencode({"album_name": name})


def served(client, urls) -> dict[str, bytes]:
    bodies = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, response.text
        bodies[url] = response.content
    return bodies


def assert_fresh(client) -> dict[str, bytes]:
    want = expected(client)
    assert served(client, want) == want
    return want


def execute(client, sql: str, *args) -> None:
    """A write straight to the database, from another connection: the versions follow any writer."""
    conn = connect(client.data_dir / DATABASE_FILE)
    try:
        conn.execute(sql, args)
    finally:
        conn.close()


@pytest.fixture
def seeded(client):
    conn = connect(client.data_dir / DATABASE_FILE)
    add_awkward_rows(conn)
    conn.close()
    return client


def add_awkward_rows(conn) -> None:
    """A library of awkward rows: paths JSON must escape, failed, gone and pending images, objects found twice,
    albums with quotes in their names, a null description, a gone member."""
    rows = [(path, "done", None) for path in TRICKY]
    rows += [("/lib/failed.jpg", "failed", None), ("/lib/gone.jpg", "done", "2024-01-01T00:00:00Z"),
             ("/lib/pending.jpg", "pending", None)]  # fmt: skip
    conn.executemany("INSERT INTO images (path, status, missing_since) VALUES (?, ?, ?)", rows)
    ids = dict(conn.execute("SELECT path, id FROM images"))
    conn.executemany(
        "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (?, ?, 0.9, 0, 0, 1, 1)",
        [(ids[TRICKY[0]], "person"), (ids[TRICKY[0]], "dog"), (ids[TRICKY[0]], "person"), (ids[TRICKY[3]], "cat"),
         (ids["/lib/gone.jpg"], "cat")],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO albums (name, description) VALUES (?, ?)",
        [('Ünï "album" \\', 'said "hi"\n\ttwice'), ("b", None), ("a", "")],
    )
    album = dict(conn.execute("SELECT name, id FROM albums"))
    members = [TRICKY[2], "/lib/gone.jpg", TRICKY[0], "/lib/failed.jpg", TRICKY[4]]
    conn.executemany(
        "INSERT INTO album_images (album_id, image_id, position) VALUES (?, ?, ?)",
        [(album["a"], ids[path], position) for position, path in enumerate(members, start=1)],
    )


@pytest.fixture
def renders(monkeypatch) -> dict[str, int]:
    """How many times each listing was rendered (a hit or a 304 renders nothing)."""
    renderers = [(catalog, "all_paths_json"), (catalog, "classes_by_image_json"), (albums, "view_json"),
                 (albums, "view_all_json"), (albums, "albums_json")]  # fmt: skip
    counts = {name: 0 for _, name in renderers}
    for module, name in renderers:
        real = getattr(module, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return counts


# -- the same bytes -----------------------------------------------------------------------------------------


def test_the_migration_is_the_fifth():
    assert MIGRATIONS[4][0] == "0005_listing_versions"


def test_listings_are_byte_for_byte_what_they_were(seeded):
    want = assert_fresh(seeded)
    assert b'\\"quoted\\" \\\\' in want["/images/all-images"] and "𝄞".encode() in want["/images/all-images"]
    assert served(seeded, want) == want  # and again, from the cache


def test_a_library_from_before_the_listing_columns_is_listed_the_same(tmp_path, monkeypatch):
    """Migration 0007 fills the paths and classes it keeps from what a library already holds."""
    path = tmp_path / DATABASE_FILE
    with monkeypatch.context() as before:
        before.setattr("appliance.migrations.MIGRATIONS", MIGRATIONS[:6])
        Database(path).close()
    conn = connect(path)
    add_awkward_rows(conn)
    conn.close()
    db = Database(path)
    try:
        conn = db.read()
        assert catalog.classes_by_image_json(db, catalog.ImageListings()) == before_all_image_objects(conn)
        assert albums.view_all_json(db, ResponseCache()) == before_view_all(conn)
        assert albums.view_json(db, "a") == before_view_album(conn, "a")
        assert b"person" in catalog.classes_by_image_json(db, catalog.ImageListings())
        assert b"ctl" in albums.view_json(db, "a")
    finally:
        db.close()


def test_an_empty_library(client):
    assert assert_fresh(client)["/images/all-images"] == b'{"images":[]}'


# -- validators ---------------------------------------------------------------------------------------------


def test_every_listing_has_an_etag_and_a_match_is_304_without_rendering(seeded, renders):
    for url in expected(seeded):
        first = seeded.get(url)
        etag = first.headers["ETag"]
        assert etag.startswith('"') and first.headers["Cache-Control"] == "no-cache"
        rendered = dict(renders)
        for given in (etag, "W/" + etag, f'"other", {etag}'):
            again = seeded.get(url, headers={"If-None-Match": given})
            assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
        assert seeded.get(url, headers={"If-None-Match": '"other"'}).content == first.content
        assert renders == rendered, f"{url} was rendered again"


def test_openapi_tells_which_routes_answer_304(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "304" in paths["/albums/view-all"]["get"]["responses"]
    assert "304" not in paths["/images/class-ids"]["get"]["responses"]


def test_extra_query_parameters_do_not_make_new_entries(seeded, renders):
    etags = {seeded.get("/images/all-images", params={"x": n}).headers["ETag"] for n in range(20)}
    etags.add(seeded.get("/images/all-images", params={"offset": 0}).headers["ETag"])
    assert len(etags) == 1 and renders["all_paths_json"] == 1


def test_requests_that_miss_one_body_together_render_it_once(seeded, monkeypatch):
    calls = []
    real = catalog.all_paths_json

    def slow(*args):
        calls.append(args)
        time.sleep(0.5)  # the other requests arrive meanwhile
        return real(*args)

    monkeypatch.setattr(catalog, "all_paths_json", slow)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: requests.get(seeded.url + "/images/all-images", timeout=30), range(4)))
    assert len(calls) == 1 and {a.content for a in answers} == {expected(seeded)["/images/all-images"]}


def test_misses_during_a_render_wait_for_it_and_then_share_one_render_of_what_is_current(seeded, monkeypatch):
    """Writers and readers together (an ingest, 16 clients that each write and read): one render of a listing
    at a time, never one per request; and each reader still sees the write it made before asking."""
    running, most, renders = [], [], []
    lock = threading.Lock()
    real = catalog.all_paths_json

    def slow(*args):
        with lock:
            running.append(1)
            most.append(len(running))
        time.sleep(0.4)
        try:
            return real(*args)
        finally:
            with lock:
                running.pop()
                renders.append(1)

    monkeypatch.setattr(catalog, "all_paths_json", slow)
    first = threading.Thread(target=lambda: requests.get(seeded.url + "/images/all-images", timeout=30))
    first.start()
    time.sleep(0.1)  # its render is under way

    def write_then_read(n: int) -> tuple[str, list[str]]:
        execute(seeded, "UPDATE images SET missing_since = 'now' WHERE path = ?", TRICKY[n])
        return TRICKY[n], requests.get(seeded.url + "/images/all-images", timeout=30).json()["images"]

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(write_then_read, range(6)))
    first.join(30)
    assert all(gone not in listed for gone, listed in answers)  # each reader sees its own write
    assert max(most) == 1, f"{max(most)} renders of one listing at once"
    assert len(renders) <= 3, f"{len(renders)} renders for 7 requests"


def test_gzip_when_asked_for_a_large_body(seeded):
    execute(
        seeded,
        "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 2000)"
        " INSERT INTO images (path) SELECT '/lib/many/' || v || '.jpg' FROM n",
    )
    host, port = seeded.url.removeprefix("http://").split(":")

    def get(path: str, **headers) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.body = response.read()
        conn.close()
        return response

    plain = get("/images/all-images", **{"Accept-Encoding": "identity"})
    packed = get("/images/all-images", **{"Accept-Encoding": "br, gzip;q=0.8"})
    assert plain.getheader("Content-Encoding") is None
    assert packed.getheader("Content-Encoding") == "gzip" and "Accept-Encoding" in packed.getheader("Vary")
    assert gzip.decompress(packed.body) == plain.body and len(packed.body) < len(plain.body) / 4
    assert packed.getheader("ETag") != plain.getheader("ETag") and packed.getheader("ETag").endswith('-gz"')
    assert get("/images/all-images", **{"If-None-Match": packed.getheader("ETag")}).status == 304
    assert get("/images/all-images", **{"If-None-Match": plain.getheader("ETag")}).status == 304
    refused = get("/images/all-images", **{"Accept-Encoding": "gzip;q=0"})
    assert refused.getheader("Content-Encoding") is None
    small = get("/albums/view-all", **{"Accept-Encoding": "gzip"})
    assert small.getheader("Content-Encoding") is None and small.body.startswith(b'{"albums":[')


# -- versions: a write makes exactly the listings it touches fresh --------------------------------------------


@pytest.fixture
def library_with_albums(client):
    response = client.post("/images/images", json={"paths": [CAT, BIRD, ZIDANE]})
    assert client.wait_for_job(response.json()["job_id"])["done"] == 3
    client.post("/albums/create-album", json={"name": "Best", "description": "the best"})
    client.post("/albums/add-multiple-to-album", json={"album_name": "Best", "paths": [ZIDANE, CAT]})
    client.post("/albums/create-album", json={"name": "Other"})
    client.post("/albums/add-multiple-to-album", json={"album_name": "Other", "paths": [BIRD]})
    for n in range(10):
        client.post("/albums/create-album", json={"name": f"Spare {n}"})
    return client


def test_an_ingest_leaves_the_album_listings_cached(library_with_albums, library, renders):
    client = library_with_albums
    cached = {url: client.get(url).headers["ETag"] for url in ("/albums/view-all", album_url("Best"))}
    before = dict(renders)
    make_images(library, 4)
    response = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert response.status_code == 202
    listed = client.get("/images/all-images")  # the new images are listed (pending) as soon as they are queued
    assert sum("img_" in path for path in listed.json()["images"]) == 4
    assert client.wait_for_job(response.json()["job_id"])["done"] == 4

    for url, etag in cached.items():
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304, url
    # claiming queue items and storing their analysis changed no path: all-images stays valid too
    assert client.get("/images/all-images", headers={"If-None-Match": listed.headers["ETag"]}).status_code == 304
    assert {name: renders[name] - count for name, count in before.items()} == {
        "all_paths_json": 1, "view_all_json": 0, "view_json": 0, "albums_json": 0, "classes_by_image_json": 0,
    }  # fmt: skip
    assert sum("img_" in path for path in client.get("/images/all-image-objects").json()["data"]) == 4


def mark_gone_then_back(client, prime):
    execute(client, "UPDATE images SET missing_since = '2024-01-01T00:00:00Z' WHERE path = ?", CAT)
    prime()
    execute(client, "UPDATE images SET missing_since = NULL WHERE path = ?", CAT)


def found_elsewhere(client, prime):
    execute(client, "UPDATE images SET missing_since = '2024-01-01T00:00:00Z' WHERE path = ?", CAT)
    prime()
    execute(client, "UPDATE images SET path = '/lib/found.png', missing_since = NULL WHERE path = ?", CAT)


def plainly(client, sql: str, *args) -> None:
    """A write from a connection as another tool opens one: foreign keys on, recursive triggers off (so rows
    a REPLACE deletes run no delete trigger)."""
    conn = sqlite_module().connect(str(client.data_dir / DATABASE_FILE), isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(sql, args)
    finally:
        conn.close()


def in_one_transaction(client, script: str) -> None:
    """Statements a user could run in one transaction, references checked at its end (deferred)."""
    conn = connect(client.data_dir / DATABASE_FILE)
    try:
        conn.executescript(f"BEGIN; PRAGMA defer_foreign_keys = ON; {script} COMMIT;")
    finally:
        conn.close()


def written_before_their_image(client, _):
    album = client.row("SELECT id FROM albums WHERE name = 'Best'")[0]
    in_one_transaction(
        client,
        "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (999, 'fish', 0.5, 0, 0, 1, 1);"
        f"INSERT INTO album_images (album_id, image_id, position) VALUES ({album}, 999, 50);"
        "INSERT INTO images (id, path, status) VALUES (999, '/lib/late.jpg', 'done');",
    )


def image_id_changed_then_reused(client, _):
    cat = client.row("SELECT id FROM images WHERE path = ?", CAT)[0]
    in_one_transaction(
        client,
        f"UPDATE images SET id = 9999 WHERE id = {cat};"
        f"INSERT INTO images (id, path, status) VALUES ({cat}, '/lib/new.jpg', 'done');",
    )


def reuse_an_album_id(client, prime):
    client.post("/albums/create-album", json={"name": "Last"})
    prime()
    client.delete("/albums/delete-album", json={"name": "Last"})
    client.post("/albums/create-album", json={"name": "Next"})  # SQLite hands out Last's id again


def delete_an_empty_album(client, prime):
    client.post("/albums/create-album", json={"name": "Empty"})
    prime()
    client.delete("/albums/delete-album", json={"name": "Empty"})


def queue_and_analyse(client, prime):
    shutil.copy(PHOTOS / "000000000009.jpg", client.data_dir.parent / "library" / "new.jpg")
    response = client.post("/images/images", json={"paths": [str(client.data_dir.parent / "library" / "new.jpg")]})
    client.wait_for_job(response.json()["job_id"])


WRITES = {
    "create album": lambda c, _: c.post("/albums/create-album", json={"name": "Fresh"}),
    "delete album": lambda c, _: c.delete("/albums/delete-album", json={"name": "Best"}),
    "add to album": lambda c, _: c.post("/albums/add-multiple-to-album", json={"album_name": "Best", "paths": [BIRD]}),
    "remove from album": lambda c, _: c.delete("/albums/remove-from-album", json={"album_name": "Best", "path": CAT}),
    "edit description": lambda c, _: c.put(
        "/albums/edit-album-description", json={"name": "Other", "description": "x"}
    ),
    "rename album": lambda c, _: execute(c, "UPDATE albums SET name = 'Renamed' WHERE name = 'Other'"),
    "delete an empty album": delete_an_empty_album,
    "reorder an album": lambda c, _: execute(
        c, "UPDATE album_images SET position = 99 WHERE image_id = (SELECT id FROM images WHERE path = ?)", ZIDANE
    ),
    "reuse an album id": reuse_an_album_id,
    "queue and analyse an image": queue_and_analyse,
    "delete image": lambda c, _: c.delete("/images/delete-image", json={"path": ZIDANE}),
    "file gone from disk": lambda c, _: execute(c, "UPDATE images SET missing_since = 'now' WHERE path = ?", CAT),
    "file back on disk": mark_gone_then_back,
    "file moved": lambda c, _: execute(c, "UPDATE images SET path = '/lib/moved.png' WHERE path = ?", CAT),
    "gone file found at a new path": found_elsewhere,
    "album place given to another image": lambda c, _: execute(
        c,
        "UPDATE album_images SET image_id = (SELECT id FROM images WHERE path = ?)"
        " WHERE image_id = (SELECT id FROM images WHERE path = ?)",
        BIRD,
        CAT,
    ),
    "analysis failed": lambda c, _: execute(c, "UPDATE images SET status = 'failed' WHERE path = ?", BIRD),
    "objects added": lambda c, _: execute(
        c,
        "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) SELECT id, 'kite', 0.5, 0, 0, 1, 1"
        " FROM images WHERE path = ?",
        BIRD,
    ),
    "objects relabelled": lambda c, _: execute(c, "UPDATE objects SET label = 'kite' WHERE label = 'tie'"),
    "objects moved to another image": lambda c, _: execute(
        c,
        "UPDATE objects SET image_id = (SELECT id FROM images WHERE path = ?)"
        " WHERE image_id = (SELECT id FROM images WHERE path = ?)",
        BIRD,
        ZIDANE,
    ),
    "an object taken over by another image's (INSERT OR REPLACE)": lambda c, _: plainly(
        c,
        "INSERT OR REPLACE INTO objects (id, image_id, label, score, x1, y1, x2, y2)"
        " SELECT objects.id, (SELECT id FROM images WHERE path = ?), 'kite', 0.5, 0, 0, 1, 1"
        " FROM objects JOIN images ON images.id = objects.image_id WHERE images.path = ?",
        BIRD,
        CAT,
    ),
    "an object's id taken by another image's (UPDATE OR REPLACE)": lambda c, _: plainly(
        c,
        "UPDATE OR REPLACE objects SET id = (SELECT min(objects.id) FROM objects JOIN images"
        " ON images.id = objects.image_id WHERE images.path = ?)"
        " WHERE id = (SELECT min(id) FROM objects WHERE image_id = (SELECT id FROM images WHERE path = ?))",
        CAT,
        ZIDANE,
    ),
    "children written before their image": written_before_their_image,
    "image id changed, then reused": image_id_changed_then_reused,
    "objects replaced": lambda c, _: execute(
        c, "DELETE FROM objects WHERE image_id = (SELECT id FROM images WHERE path = ?)", ZIDANE
    ),
}


@pytest.mark.parametrize("write", WRITES)
def test_after_each_kind_of_write_the_next_listing_is_fresh(library_with_albums, write):
    client = library_with_albums

    before: dict[str, bytes] = {}

    def prime() -> None:  # every listing cached, as they are now
        before.update(expected(client))
        served(client, before)

    prime()
    WRITES[write](client, prime)
    assert assert_fresh(client) != before, "the write changed no listing: the test proves nothing"


def test_editing_one_album_renders_only_that_album_again(library_with_albums, monkeypatch):
    client = library_with_albums
    rendered = []
    real = albums.albums_json
    monkeypatch.setattr(albums, "albums_json", lambda conn, ids: rendered.append(sorted(ids)) or real(conn, ids))
    client.get("/albums/view-all")
    client.put("/albums/edit-album-description", json={"name": "Other", "description": "new"})
    assert_fresh(client)
    assert len(rendered) == 2 and len(rendered[0]) == 12
    assert rendered[1] == [client.row("SELECT id FROM albums WHERE name = 'Other'")[0]]


@pytest.mark.parametrize(
    "url,renderer,write",
    [
        ("/albums/view-all", (albums, "view_all_json"), "create album"),
        ("/images/all-images", (catalog, "all_paths_json"), "file gone from disk"),
        ("/images/all-image-objects", (catalog, "classes_by_image_json"), "objects replaced"),
    ],
)
def test_a_write_while_a_render_is_in_flight_is_not_hidden_by_it(
    library_with_albums, monkeypatch, url, renderer, write
):
    client = library_with_albums
    rendered, release = threading.Event(), threading.Event()
    real = getattr(*renderer)

    def slow(*args, **kwargs):
        body = real(*args, **kwargs)  # read before the write below
        rendered.set()
        release.wait(10)
        return body

    monkeypatch.setattr(*renderer, slow)
    answers = []
    reader = threading.Thread(target=lambda: answers.append(requests.get(client.url + url, timeout=30)))
    reader.start()
    assert rendered.wait(10)
    monkeypatch.setattr(*renderer, real)
    WRITES[write](client, None)
    release.set()
    reader.join(10)
    fresh = client.get(url)
    assert fresh.content == expected(client)[url] != answers[0].content
    assert fresh.headers["ETag"] != answers[0].headers["ETag"]


def test_the_people_version_follows_faces_people_and_their_images(tmp_path):
    """No listing here is cached by it yet: /tag answers can be, with cached=("people",)."""
    db = Database(tmp_path / "a.db")

    def bumps(sql: str, *args) -> int:
        (before,) = db.listing_versions(("people",))
        with db.write() as conn:
            conn.execute(sql, args)
        return db.listing_versions(("people",))[0] - before

    bumps("INSERT INTO images (id, path, status) VALUES (1, '/a.jpg', 'done'), (2, '/b.jpg', 'done')")
    face = "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints, cluster_id) VALUES (1, 1, 0, 0, 1, 1, '', 7)"
    assert bumps(face) == 1
    assert bumps("UPDATE faces SET cluster_id = 8") == 1
    assert bumps("INSERT INTO people (id) VALUES (8)") == 1
    assert bumps("UPDATE people SET name = 'Ann'") == 1
    assert bumps("UPDATE images SET missing_since = 'now' WHERE id = 1") == 1
    assert bumps("UPDATE images SET missing_since = 'now' WHERE id = 2") == 0  # no face in it
    assert bumps("UPDATE images SET taken_at = 'then' WHERE id = 1") == 0  # nothing the answers show
    assert bumps("DELETE FROM people") == 1
    assert bumps("DELETE FROM images WHERE id = 1") == 1  # its face goes with it
    db.close()


def test_a_route_cached_until_any_write_never_keeps_a_body_rendered_before_one(tmp_path):
    """cached=True (routes not yet versioned by area): the in-process write counter, read before the render."""
    db = Database(tmp_path / "a.db")
    context = types.SimpleNamespace(db=db, cache=ResponseCache())
    request = types.SimpleNamespace(get_header=lambda name, default="": default)
    rendering, written = threading.Event(), threading.Event()

    def count_albums(ctx) -> bytes:
        return str(db.read().execute("SELECT count(*) FROM albums").fetchone()[0]).encode()

    def slow_count(ctx) -> bytes:
        body = count_albums(ctx)  # read before the write below
        rendering.set()
        written.wait(10)
        return body

    slow, fast = (Route("GET", "/count", handler, "count", cached=True) for handler in (slow_count, count_albums))
    reader = threading.Thread(target=lambda: cached_answer(slow, context, [], request))
    reader.start()
    rendering.wait(10)
    with db.write() as conn:
        conn.execute("INSERT INTO albums (name) VALUES ('new')")
    assert cached_answer(fast, context, [], request).body == b"1"  # a request after the write
    written.set()
    reader.join(10)
    assert cached_answer(fast, context, [], request).body == b"1", "the stale body was kept"
    db.close()


# -- listings kept in chunks ---------------------------------------------------------------------------------


def random_write(conn, rng: random.Random, names: list[str]) -> None:
    """One write of a kind that changes the image listings, somewhere in the library."""
    present = [row[0] for row in conn.execute("SELECT path FROM images")]
    absent = sorted(set(names) - set(present))
    kind = rng.choice(["add", "add", "delete", "move", "gone", "back", "status", "object", "objects gone", "relabel"])
    if kind == "add" or not present:
        if absent:
            conn.execute("INSERT INTO images (path, status) VALUES (?, ?)", (rng.choice(absent), rng.choice(STATUSES)))
        return
    path = rng.choice(present)
    image = "(SELECT id FROM images WHERE path = ?)"
    if kind == "delete":
        conn.execute("DELETE FROM images WHERE path = ?", (path,))
    elif kind == "move" and absent:
        conn.execute("UPDATE images SET path = ? WHERE path = ?", (rng.choice(absent), path))
    elif kind in ("gone", "back"):
        conn.execute("UPDATE images SET missing_since = ? WHERE path = ?", ("2024" if kind == "gone" else None, path))
    elif kind == "status":
        conn.execute("UPDATE images SET status = ? WHERE path = ?", (rng.choice(STATUSES), path))
    elif kind == "object":
        conn.execute(
            f"INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES ({image}, ?, 0.5, 0, 0, 1, 1)",
            (path, rng.choice(["cat", "dog", "kite"])),
        )
    elif kind == "objects gone":
        conn.execute(f"DELETE FROM objects WHERE image_id = {image}", (path,))
    elif kind == "relabel":
        conn.execute(f"UPDATE objects SET label = 'bird' WHERE image_id = {image}", (path,))


STATUSES = ["pending", "done", "done", "failed"]


def test_listings_kept_in_chunks_follow_every_write(tmp_path, monkeypatch):
    """Chunks of 3 paths, 800 random writes across a library of up to 60 photos: after each, both listings
    are what the whole tables say; a reader still on an older snapshot gets that snapshot's listing and
    leaves the chunks as they were; more changes than the log keeps render everything again."""
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 3)
    db, rng, listings = Database(tmp_path / "a.db"), random.Random(20261129), catalog.ImageListings()
    names = [f"/lib/{folder}/{n:02d}.jpg" for folder in ("a", "b", 'c "q"') for n in range(20)]

    def check(db_: Database) -> None:
        with db_.snapshot() as conn:
            assert catalog.all_paths_json(db_, listings) == before_all_images(conn)
            assert catalog.classes_by_image_json(db_, listings) == before_all_image_objects(conn)

    outsider = db.module.connect(str(tmp_path / "a.db"), isolation_level=None)  # recursive triggers off
    outsider.execute("PRAGMA foreign_keys = ON")
    for step in range(800):
        if step % 10 == 5:  # REPLACE from a connection that does not run delete triggers for it
            present = [row[0] for row in outsider.execute("SELECT path FROM images")]
            replace = rng.choice(
                [
                    "INSERT OR REPLACE INTO images (id, path, status)"
                    " VALUES ((SELECT id FROM images WHERE path = ?), ?, 'done')",
                    "UPDATE OR REPLACE images SET path = ? WHERE path = ?",
                    "UPDATE OR REPLACE images SET id = (SELECT id FROM images WHERE path = ?) WHERE path = ?",
                ]
            )
            if present:
                with contextlib.suppress(db.module.IntegrityError):  # objects still name the id it gives up
                    outsider.execute(replace, (rng.choice(present), rng.choice(names)))
        with db.write() as conn:
            for _ in range(rng.choice([1, 1, 1, 4])):
                random_write(conn, rng, names)
        check(db)
        if step % 100 == 50:  # a reader on an older snapshot, after the chunks moved on
            older = Database(tmp_path / "a.db")
            with older.snapshot() as conn:
                conn.execute("SELECT 1 FROM images").fetchall()  # the snapshot starts at its first read
                with db.write() as writer:
                    random_write(writer, rng, names)
                check(db)
                check(older)
            older.close()
            check(db)
    with db.write() as conn:  # more changes than listing_changes keeps: the first ones are not in it any more
        conn.execute("INSERT INTO images (path, status) VALUES ('/lib/a/first.jpg', 'done')")
        conn.executemany("INSERT INTO images (path) VALUES (?)", ((f"/lib/bulk/{n:05d}.jpg",) for n in range(10_050)))
    check(db)
    outsider.close()
    db.close()


def test_a_path_that_is_not_utf_8_leaves_the_listings_working(tmp_path, monkeypatch):
    """Written by another tool: the appliance never decodes listed paths."""
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 2)
    db, listings = Database(tmp_path / "a.db"), catalog.ImageListings()
    with db.write() as conn:
        conn.executemany("INSERT INTO images (path, status) VALUES (?, 'done')", [("/a",), ("/b",), ("/c",)])
    catalog.all_paths_json(db, listings)
    with db.write() as conn:
        conn.execute("INSERT INTO images (path, status) VALUES (CAST(x'2f62ff' AS TEXT), 'done')")
        conn.execute("INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (4, 'cat', 1, 0, 0, 1, 1)")
    for _ in range(2):
        assert catalog.all_paths_json(db, listings) == b'{"images":["/a","/b","/b\xff","/c"]}'
        assert catalog.classes_by_image_json(db, listings) == b'{"data":{"/a":[],"/b":[],"/b\xff":["cat"],"/c":[]}}'
    db.close()


# -- the cache itself ---------------------------------------------------------------------------------------


def seed_many(data_dir, images: int) -> None:
    conn = connect(data_dir / DATABASE_FILE)
    conn.execute("BEGIN")  # one transaction, not one per row
    conn.executemany(
        "INSERT INTO images (path, status) VALUES (?, 'done')",
        ((f"/lib/{n % 50:02d}/a-long-enough-name-for-a-photo-{n:07d}.jpg",) for n in range(images)),
    )
    conn.execute("COMMIT")
    conn.close()


def test_the_listings_of_a_growing_library_stay_cached_together(client, renders):
    """180,000 photos: all-images and all-image-objects are 9 MB each. A cache too small for both (16 MiB
    was) renders them again in turn for a client that asks for one and then the other."""
    seed_many(client.data_dir, 180_000)
    for url in ("/images/all-images", "/images/all-image-objects", "/images/all-images"):
        assert client.get(url, headers={"Accept-Encoding": "identity"}).status_code == 200
    assert renders["all_paths_json"] == 1


def test_the_cache_is_bounded_by_bytes_and_keyed_by_versions():
    cache = ResponseCache(max_bytes=10_000)
    for n in range(20):
        cache.put(f"key {n}", (1,), b"x" * 3_000)
    assert cache.size <= 10_000 and [cache.get(f"key {n}", (1,)) is not None for n in range(16, 20)] == [
        False, True, True, True,
    ]  # fmt: skip
    assert cache.get("key 19", (2,)) is None
    cache.put("huge", (1,), b"x" * 20_000)  # larger than the whole cache: not kept
    assert cache.get("huge", (1,)) is None and cache.size <= 10_000
