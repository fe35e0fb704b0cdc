"""The /tag answers, read from the faces table, the kNN graph and the vectors in memory."""

from __future__ import annotations

from collections import defaultdict

from ..catalog import ANALYSED
from ..db import Database
from .store import FaceVectors

SHOWN_PERSON = "faces.cluster_id IS NOT NULL AND faces.cluster_id NOT IN (SELECT id FROM people WHERE hidden)"


def related_images(db: Database, store: FaceVectors, image_id: int, limit: int = 100) -> list[str]:
    """Other images showing a person of this one, most similar first: each face of it compared with the
    faces of its own person (in memory: no search over everyone)."""
    conn = db.read()
    best: dict[str, float] = {}
    for face_id, person in conn.execute(
        "SELECT id, cluster_id FROM faces WHERE image_id = ? AND cluster_id IS NOT NULL", (image_id,)
    ).fetchall():
        _, vector = store.vectors([face_id])
        if not len(vector):
            continue
        rows = conn.execute(
            "SELECT faces.id, images.path FROM faces JOIN images ON images.id = faces.image_id"
            f" WHERE faces.cluster_id = ? AND faces.image_id != ? AND {ANALYSED}",
            (person, image_id),
        ).fetchall()
        ids, vectors = store.vectors([row[0] for row in rows])
        path_of = dict(rows)
        for other, similarity in zip(ids, vectors @ vector[0], strict=True):
            path = path_of[other]
            best[path] = max(best.get(path, -1.0), float(similarity))
    return sorted(best, key=lambda path: (-best[path], path))[:limit]


def matches(db: Database, threshold: float, limit: int) -> list[dict]:
    """Pairs of different images that share a person, each once, most similar first, from the kNN graph's
    strongest edges: the top edges are read (a bounded sort of one column, no join over the whole graph), and
    four times as many again until the pairs found rank before any edge left unread."""
    edges = limit * 4
    with db.snapshot() as conn:
        while True:
            rows = conn.execute(
                "SELECT n.similarity, ia.path, ib.path, fa.image_id != fb.image_id"
                " AND ia.status = 'done' AND ia.missing_since IS NULL"
                " AND ib.status = 'done' AND ib.missing_since IS NULL"
                " FROM (SELECT face_id, neighbour_id, similarity FROM face_neighbours WHERE similarity >= ?"
                "  ORDER BY similarity DESC LIMIT ?) n"
                " LEFT JOIN faces fa ON fa.id = n.face_id LEFT JOIN faces fb ON fb.id = n.neighbour_id"
                " LEFT JOIN images ia ON ia.id = fa.image_id LEFT JOIN images ib ON ib.id = fb.image_id",
                (threshold, edges),
            ).fetchall()
            best: dict[tuple[str, str], float] = {}
            for similarity, a, b, shown in rows:
                if shown:
                    pair = (a, b) if a < b else (b, a)
                    best[pair] = max(best.get(pair, similarity), similarity)
            ranked = sorted(best, key=lambda pair: (-best[pair], pair))[:limit]
            # Done when every edge was read, or when an unread edge (no stronger than the weakest read) could
            # not make a pair that ranks among these.
            if len(rows) < edges or (len(ranked) == limit and best[ranked[-1]] > min(row[0] for row in rows)):
                return [{"image1": a, "image2": b, "similarity": round(best[a, b], 4)} for a, b in ranked]
            edges *= 4


def clusters(db: Database, min_size: int = 1) -> dict[str, list[str]]:
    """Each shown person's images (paths, sorted), largest first; hidden people and unassigned faces are not."""
    people: dict[int, list[str]] = defaultdict(list)
    for person, path in db.read().execute(
        "SELECT DISTINCT faces.cluster_id, images.path FROM faces JOIN images ON images.id = faces.image_id"
        f" WHERE {ANALYSED} AND {SHOWN_PERSON} ORDER BY images.path"
    ):
        people[person].append(path)
    ranked = sorted(people.items(), key=lambda item: (-len(item[1]), item[0]))
    return {str(person): paths for person, paths in ranked if len(paths) >= min_size}


def people(db: Database, include_hidden: bool = False) -> list[dict]:
    """Every person with a face: name, photo count, a face to show (the best: largest, surest), hidden or not.
    The unassigned faces come last as one entry with person_id None."""
    conn = db.read()
    hidden = "" if include_hidden else " AND NOT coalesce(people.hidden, 0)"
    rows = conn.execute(
        "SELECT faces.cluster_id, people.name, count(DISTINCT faces.image_id), coalesce(people.hidden, 0),"
        " (SELECT f.id FROM faces f JOIN images i ON i.id = f.image_id WHERE f.cluster_id = faces.cluster_id"
        "   AND i.status = 'done' AND i.missing_since IS NULL ORDER BY coalesce(f.quality, 1) DESC,"
        "   (f.x2 - f.x1) * f.score DESC LIMIT 1)"
        " FROM faces JOIN images ON images.id = faces.image_id LEFT JOIN people ON people.id = faces.cluster_id"
        f" WHERE {ANALYSED} AND faces.cluster_id IS NOT NULL{hidden}"
        " GROUP BY faces.cluster_id ORDER BY 3 DESC, 1"
    ).fetchall()
    found = [{"person_id": r[0], "name": r[1], "photos": r[2], "hidden": bool(r[3]), "cover_face": r[4]} for r in rows]
    photos, first = conn.execute(
        "SELECT count(DISTINCT faces.image_id), min(faces.id) FROM faces JOIN images ON images.id = faces.image_id"
        f" WHERE {ANALYSED} AND faces.cluster_id IS NULL"
    ).fetchone()
    if photos:
        found.append({"person_id": None, "name": None, "photos": photos, "hidden": False, "cover_face": first})
    for person in found:  # the photo of the face shown, for clients that show whole photos
        person["cover"] = conn.execute(
            "SELECT images.path FROM faces JOIN images ON images.id = faces.image_id WHERE faces.id = ?",
            (person["cover_face"],),
        ).fetchone()[0]
    return found


def image_faces(db: Database, image_id: int) -> list[dict]:
    rows = db.read().execute(
        "SELECT faces.id, faces.cluster_id, people.name, faces.score, faces.x1, faces.y1, faces.x2, faces.y2,"
        " coalesce(faces.quality, 1) FROM faces LEFT JOIN people ON people.id = faces.cluster_id"
        " WHERE faces.image_id = ? ORDER BY faces.x1",
        (image_id,),
    )
    return [
        {"face_id": r[0], "person_id": r[1], "name": r[2], "score": r[3], "box": list(r[4:8]), "good": bool(r[8])}
        for r in rows
    ]


def person_faces(db: Database, person: int | None, limit: int, offset: int) -> list[dict]:
    """The faces of one person (None: the unassigned ones), best first, with their photos."""
    where = "faces.cluster_id IS NULL" if person is None else "faces.cluster_id = ?"
    rows = db.read().execute(
        "SELECT faces.id, images.path, coalesce(faces.quality, 1), faces.locked FROM faces"
        f" JOIN images ON images.id = faces.image_id WHERE {where} AND {ANALYSED}"
        " ORDER BY coalesce(faces.quality, 1) DESC, faces.score DESC, faces.id LIMIT ? OFFSET ?",
        ([] if person is None else [person]) + [limit, offset],
    )
    return [{"face_id": r[0], "path": r[1], "good": bool(r[2]), "placed": bool(r[3])} for r in rows]
