"""Faces with the real models on the real photos: detection, people, /tag routes, stable cluster ids."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest

from appliance.datadir import DATABASE_FILE
from appliance.db import Database, connect
from appliance.faces import answers, graph
from appliance.faces.cluster import Faces, group_faces, stable_ids
from appliance.infer.embedder import TEMPLATE, similarity_transform

from .conftest import FACES, MODELS, PHOTOS


def faces_per_image(client) -> dict[str, int]:
    conn = connect(client.data_dir / DATABASE_FILE)
    try:
        rows = conn.execute(
            "SELECT images.path, count(faces.id) FROM images LEFT JOIN faces ON faces.image_id = images.id"
            " GROUP BY images.id"
        )
        return {path.rsplit("/", 1)[1]: count for path, count in rows}
    finally:
        conn.close()


def identity(path: str) -> str:
    return path.rsplit("/", 1)[1].rsplit("_", 1)[0]


EMBEDDERS = pytest.mark.parametrize("embedder", ["mobilefacenet_128d", "mobilefacenet_192d"])


@EMBEDDERS
def test_ten_lfw_faces_make_exactly_four_people(start_appliance, embedder):
    client = start_appliance(embedder=embedder)
    client.ingest(FACES)
    clusters = client.get("/tag/clusters").json()["clusters"]
    people = sorted(sorted({identity(p) for p in paths}) for paths in clusters.values())
    assert people == [["Aaron_Peirsol"], ["Abdullah"], ["Aicha_El_Ouafi"], ["Frank_Solich"]]
    assert [len(paths) for paths in clusters.values()] == [3, 3, 2, 2]  # largest first

    # a full re-clustering finds the same people under the same ids
    assert client.appliance.worker.faces.recluster(client.appliance.db, everything=True).people == 4
    assert client.get("/tag/clusters").json()["clusters"] == clusters


@EMBEDDERS
def test_faces_in_the_photos_and_who_is_related(start_appliance, embedder):
    client = start_appliance(embedder=embedder)
    client.ingest(PHOTOS)
    counts = faces_per_image(client)
    assert counts["three_khans.png"] == 3
    assert counts["zidane.jpg"] == 2 and counts["test_2_faces.png"] == 2
    assert counts["amir_khan.png"] == counts["salman_khan.png"] == counts["grace_hopper.bmp"] == 1
    assert all(counts[name] == 0 for name in ("cat.png", "bird.bmp", "000000000034.jpg", "empty.png"))

    def related(name):
        response = client.get("/tag/related-images", params={"path": str(PHOTOS / name)})
        assert response.status_code == 200
        return [path.rsplit("/", 1)[1] for path in response.json()["related_images"]]

    assert "three_khans.png" in related("amir_khan.png") and "salman_khan.png" not in related("amir_khan.png")
    assert "three_khans.png" in related("salman_khan.png") and "amir_khan.png" not in related("salman_khan.png")
    assert set(related("three_khans.png")) == {"amir_khan.png", "salman_khan.png"}
    # the two look-alike women of test_2_faces.png share a photo, so they are two people
    assert related("test_2_faces.png") == []
    assert related("cat.png") == []
    assert client.get("/tag/related-images", params={"path": str(PHOTOS / "nope.png")}).status_code == 404

    clusters = client.get("/tag/clusters").json()["clusters"]
    assert len(clusters) == 8  # Aamir, Salman, Shah Rukh, Grace Hopper, two women, two men
    assert sum(len(paths) == 1 for paths in clusters.values()) == 6
    assert len(client.get("/tag/clusters", params={"min_size": 2}).json()["clusters"]) == 2


def test_match_lists_each_pair_of_images_once_most_similar_first(client):
    client.ingest(PHOTOS)
    pairs = client.get("/tag/match").json()["similar_pairs"]
    names = [tuple(sorted(p.rsplit("/", 1)[1] for p in (pair["image1"], pair["image2"]))) for pair in pairs]
    assert sorted(names) == [("amir_khan.png", "three_khans.png"), ("salman_khan.png", "three_khans.png")]
    similarities = [pair["similarity"] for pair in pairs]
    assert similarities == sorted(similarities, reverse=True) and min(similarities) >= 0.5
    assert len(client.get("/tag/match", params={"threshold": 0.7}).json()["similar_pairs"]) == 1
    assert client.get("/tag/match", params={"limit": 1}).json()["similar_pairs"] == pairs[:1]
    assert client.get("/tag/match", params={"threshold": 5}).status_code == 400


def test_cluster_ids_stay_stable_as_photos_arrive(client, library):
    first = ["Aaron_Peirsol_0001.jpg", "Abdullah_0002.jpg", "Frank_Solich_0001.jpg"]
    for name in first:
        shutil.copy(FACES / name, library / name)
    client.ingest(library)
    before = {identity(paths[0]): cluster for cluster, paths in client.get("/tag/clusters").json()["clusters"].items()}
    for path in FACES.iterdir():
        shutil.copy(path, library / path.name)
    client.ingest(library)
    after = client.get("/tag/clusters").json()["clusters"]
    for person, cluster in before.items():
        assert {identity(p) for p in after[cluster]} == {person}
    assert client.appliance.worker.faces.recluster(client.appliance.db, everything=True).people == 4
    assert client.get("/tag/clusters").json()["clusters"] == after


def test_deleting_an_image_removes_its_faces_and_updates_people(client, library):
    shutil.copy(PHOTOS / "amir_khan.png", library / "amir copy.png")  # byte-identical: faces copied
    client.ingest(PHOTOS)
    client.ingest(library)
    amir = str(PHOTOS / "amir_khan.png")
    related = client.get("/tag/related-images", params={"path": amir}).json()["related_images"]
    assert set(related) == {str(PHOTOS / "three_khans.png"), str(library / "amir copy.png")}
    assert related[0] == str(library / "amir copy.png")  # identical face: similarity 1

    before_people = client.get("/tag/clusters").json()["clusters"]
    vectors = client.appliance.worker.faces.table
    conn = connect(client.data_dir / DATABASE_FILE)
    before = conn.execute(f"SELECT count(*) FROM {vectors}").fetchone()[0]
    assert client.delete("/images/delete-image", json={"path": str(PHOTOS / "three_khans.png")}).status_code == 200
    assert conn.execute(f"SELECT count(*) FROM {vectors}").fetchone()[0] == before - 3
    assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == before - 3
    conn.close()
    assert client.get("/tag/related-images", params={"path": amir}).json()["related_images"] == [
        str(library / "amir copy.png")
    ]
    people = sorted(sorted(paths) for paths in client.get("/tag/clusters").json()["clusters"].values())
    amir_photos = sorted([str(PHOTOS / "amir_khan.png"), str(library / "amir copy.png")])
    assert amir_photos in people and [str(PHOTOS / "salman_khan.png")] in people
    assert len(people) == len(before_people) - 1, "Shah Rukh Khan was only in the deleted photo"


DIMENSIONS = 128


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def person(direction: np.ndarray, count: int, rng, noise: float = 0.65) -> np.ndarray:
    """Faces of one person: its direction plus noise (same-person cosine about 0.7, as MobileFaceNet gives)."""
    return unit(direction + rng.standard_normal((count, DIMENSIONS)) * noise / np.sqrt(DIMENSIONS))


def knn_edges(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -2.0)
    return np.array([(similarity[i, j], i, j) for i in range(len(vectors)) for j in np.argsort(-similarity[i])[:k]])


def group(vectors, images=None, anchor=None, excluded=None) -> np.ndarray:
    count = len(vectors)
    faces = Faces(
        image=np.arange(count) if images is None else np.array(images),
        vectors=vectors,
        good=np.ones(count, bool),
        anchor=np.zeros(count, np.int64) if anchor is None else np.array(anchor),
        excluded=excluded or {},
    )
    labels, _ = group_faces(faces, knn_edges(vectors), 0.5, 0.6)
    return labels


def two_people(rng, cross: float = 0.41) -> tuple[np.ndarray, np.ndarray]:
    a = unit(rng.standard_normal(DIMENSIONS))
    b = rng.standard_normal(DIMENSIONS)
    b = unit(b - (b @ a) * a)
    return a, unit(cross * a + np.sqrt(1 - cross**2) * b)


@pytest.mark.parametrize("seed", range(5))
def test_one_ambiguous_face_does_not_chain_two_people(seed):
    rng = np.random.default_rng(seed)
    a, b = two_people(rng)
    between = unit(a + b)[None]  # as like one as the other: about 0.77 to each
    labels = group(np.vstack([person(a, 20, rng), person(b, 20, rng), between]))
    assert len(set(labels[:20])) == 1 and len(set(labels[20:40])) == 1
    assert labels[0] != labels[20], "single linkage merged them through the ambiguous face"


@pytest.mark.parametrize("seed", range(5))
def test_a_collage_sets_one_face_apart_not_the_person(seed):
    rng = np.random.default_rng(seed)
    faces = person(two_people(rng)[0], 12, rng)
    images = list(range(12))
    images[11] = images[10]  # the same person twice in one photo
    labels = group(faces, images)
    assert len(set(labels[:10])) == 1, "the person stays whole"
    assert labels[10] != labels[11] and labels[0] in (labels[10], labels[11])


def test_two_faces_of_one_photo_are_not_joined_through_others_either():
    rng = np.random.default_rng(1)
    faces = person(two_people(rng)[0], 6, rng)
    labels = group(faces, images=[10, 10, 11, 12, 13, 14])
    assert labels[0] != labels[1]


def test_placed_faces_hold_their_person_and_excluded_ones_stay_out():
    rng = np.random.default_rng(2)
    a, b = two_people(rng)
    faces = np.vstack([person(a, 8, rng), person(b, 8, rng)])
    # the user put face 8 (of b) into person 7 with a's faces 0 and 1, and took face 2 out of person 7
    anchor = [7, 7, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]
    labels = group(faces, anchor=anchor, excluded={2: {7}})
    assert labels[0] == labels[1] == labels[8]
    assert labels[2] != labels[0]


def test_stable_ids_follow_the_largest_overlap_and_anchors():
    fresh = iter(range(100, 200))
    # group 1 holds old 7's faces, group 2 splits off old 7 with one face, group 3 is all new, group 4 is the
    # user's person 9 (it keeps its id whatever it overlaps), -1 is an unassigned face
    ids = stable_ids([1, 1, 2, 3, 4, -1], [7, 7, 7, None, 7, 5], {4: 9}, lambda: next(fresh))
    assert ids == [7, 7, 100, 101, 9, None]


def test_similarity_transform_recovers_a_known_one():
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = (TEMPLATE - shift) @ np.linalg.inv(scale * rotation).T
    matrix = similarity_transform(source, TEMPLATE)
    assert np.allclose(source @ matrix[:, :2].T + matrix[:, 2], TEMPLATE, atol=1e-9)


def test_small_faces_in_a_group_photo_are_found_through_person_boxes(tmp_path):
    from PIL import Image

    from appliance.config import Settings
    from appliance.decode import decode
    from appliance.pipeline import PipelineFactory

    # 12 people, each 260 px wide in a 4000x3000 photo: faces of about 30 px once decoded to 1280.
    canvas = Image.open(PHOTOS / "000000000025.jpg").convert("RGB").resize((4000, 3000))
    portraits = ["amir_khan.png", "salman_khan.png", "grace_hopper.bmp"]
    for n in range(12):
        with Image.open(PHOTOS / portraits[n % 3]) as portrait:
            small = portrait.convert("RGB").resize((260, round(portrait.height * 260 / portrait.width)))
        canvas.paste(small, (200 + (n % 6) * 620, 600 + (n // 6) * 1100))
    canvas.save(tmp_path / "group.jpg", quality=90)

    pipeline = PipelineFactory(Settings(models_dir=MODELS, data_dir=tmp_path, library_roots=[tmp_path]))()
    with open(tmp_path / "group.jpg", "rb") as f:
        whole_image = pipeline.face_detector.detect(decode(f, 10**9, 1280, pipeline.budget).pixels)
        f.seek(0)
        analysis = pipeline.analyse(f, "0" * 64)
    assert len(whole_image) <= 2
    assert len(analysis.faces) >= 10
    # each portrait is pasted four times: every face found has a twin elsewhere in the photo (not itself)
    similarity = analysis.face_vectors @ analysis.face_vectors.T
    np.fill_diagonal(similarity, -1.0)
    assert (similarity.max(axis=1) > 0.9).all(), similarity.max(axis=1)


def test_match_reads_more_of_the_graph_until_the_top_pairs_are_certain(tmp_path):
    """The strongest edges join two photos of one person many times over, and a photo gone from disk: the
    first edges read make fewer pairs than asked, and the answer is still exactly the whole graph's."""
    db = Database(tmp_path / DATABASE_FILE)
    rng = np.random.default_rng(3)
    faces_of = {1: 10, 2: 10, 3: 2, 4: 2} | {image: 1 for image in range(5, 40)}
    with db.write() as conn:
        for image, count in faces_of.items():
            missing = "2024-01-01T00:00:00Z" if image == 3 else None
            conn.execute(
                "INSERT INTO images (id, path, status, missing_since) VALUES (?, ?, 'done', ?)",
                (image, f"/p/{image:02d}.jpg", missing),
            )
            conn.executemany(
                "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints) VALUES (?, 0.9, 0, 0, 1, 1, '[]')",
                [(image,)] * count,
            )
        face_image = dict(conn.execute("SELECT id, image_id FROM faces"))
        by_image = {image: [f for f, i in face_image.items() if i == image] for image in faces_of}
        edges = {pair: 0.99 - 0.0001 * n for n, pair in enumerate(itertools.product(by_image[1], by_image[2]))}
        edges |= {(a, b): 0.995 for a in by_image[3] for b in by_image[4]}  # the strongest, of a photo gone
        faces = list(face_image)
        for _ in range(400):
            a, b = rng.choice(faces, 2, replace=False)
            edges[int(a), int(b)] = float(rng.choice([0.8, 0.7, 0.6, 0.55, 0.3]))  # ties on purpose
        conn.executemany(
            "INSERT INTO face_neighbours (face_id, neighbour_id, similarity) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET similarity = excluded.similarity",
            [(a, b, s) for (a, b), s in edges.items()],
        )
        stored = conn.execute("SELECT face_id, neighbour_id, similarity FROM face_neighbours").fetchall()

    def whole_graph(threshold: float, limit: int) -> list[dict]:
        best: dict[tuple[str, str], float] = {}
        for a, b, similarity in stored:
            ia, ib = face_image[a], face_image[b]
            if similarity >= threshold and ia != ib and 3 not in (ia, ib):
                pair = tuple(sorted((f"/p/{ia:02d}.jpg", f"/p/{ib:02d}.jpg")))
                best[pair] = max(best.get(pair, similarity), similarity)
        ranked = sorted(best, key=lambda pair: (-best[pair], pair))[:limit]
        return [{"image1": a, "image2": b, "similarity": round(best[a, b], 4)} for a, b in ranked]

    for threshold, limit in [(0.5, 1), (0.5, 3), (0.5, 20), (0.5, 1000), (0.65, 5), (0.99, 10), (0.999, 10)]:
        assert answers.matches(db, threshold, limit) == whole_graph(threshold, limit), (threshold, limit)
    top = answers.matches(db, 0.5, 3)[0]
    assert (top["image1"], top["image2"]) == ("/p/01.jpg", "/p/02.jpg") and top["similarity"] > 0.98
    db.close()


def test_the_bulk_graph_is_each_faces_nearest_above_the_floor_for_crowds_and_loners():
    """One person with many faces (every pair above the floor: the partial-sort path), people with a few
    (the sparse path) and faces like no one (fewer than k neighbours), against a plain sort of each row."""
    rng = np.random.default_rng(5)
    a, b = two_people(rng)
    vectors = np.vstack([person(a, 300, rng), person(b, 8, rng), unit(rng.standard_normal((40, DIMENSIONS)))])
    found = np.concatenate(list(graph.blocked_knn(vectors, 10, block=64)))
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -2.0)
    expected = []
    for i in range(len(vectors)):
        for j in np.argsort(-similarity[i])[:10]:
            if similarity[i, j] >= graph.FLOOR:
                expected.append((i, int(j)))
    assert sorted(zip(found[:, 1].astype(int).tolist(), found[:, 2].astype(int).tolist(), strict=True)) == sorted(
        expected
    )
    rows = found[:, 1]
    assert (np.diff(rows) >= 0).all() and all((np.diff(found[rows == r, 0]) <= 0).all() for r in range(len(vectors))), (
        "by row, most similar first"
    )
    assert (found[:, 0] >= graph.FLOOR).all()
