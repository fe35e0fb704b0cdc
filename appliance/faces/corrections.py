"""What a user says about people: names, merges, moves, "not this person", hiding. Each is kept as a
constraint on faces (`faces.locked`, `face_exclusions`) that no re-clustering undoes, and each marks the
people it touches so the next incremental re-clustering looks at them again."""

from __future__ import annotations

from collections.abc import Sequence

from ..db import Database
from ..errors import bad_request, not_found


def touch(conn, people: Sequence[int | None]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO people_touched (person_id) VALUES (?)", [(p,) for p in people if p is not None]
    )


def person_row(conn, person_id: int):
    row = conn.execute("SELECT id, name, hidden FROM people WHERE id = ?", (person_id,)).fetchone()
    if row is None or not conn.execute("SELECT 1 FROM faces WHERE cluster_id = ? LIMIT 1", (person_id,)).fetchone():
        raise not_found(f"There is no person {person_id}.")
    return row


def update_person(db: Database, person_id: int, name: str | None, hidden: bool | None) -> None:
    """Name a person (an empty name clears it), and/or hide or show them. A name holds on to the faces it was
    given to: they are placed (locked), so a later split leaves the name with them, not with the other part."""
    with db.write() as conn:
        person_row(conn, person_id)
        if name is not None:
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (name or None, person_id))
            if name:
                conn.execute("UPDATE faces SET locked = 1 WHERE cluster_id = ?", (person_id,))
        if hidden is not None:
            conn.execute("UPDATE people SET hidden = ? WHERE id = ?", (int(hidden), person_id))


def merge(db: Database, person_id: int, others: Sequence[int]) -> int:
    """Put every face of `others` into `person_id` and place them there (a user's decision outlives any
    re-clustering). The merged person keeps its name, or takes the first name among the others. Returns how
    many faces moved."""
    others = [other for other in dict.fromkeys(others) if other != person_id]
    if not others:
        raise bad_request("Name at least one other person to merge into this one.")
    with db.write() as conn:
        target = person_row(conn, person_id)
        rows = [person_row(conn, other) for other in others]
        if target["name"] is None:
            name = next((row["name"] for row in rows if row["name"]), None)
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (name, person_id))
        marks = ",".join("?" * len(others))
        moved = conn.execute(
            f"UPDATE faces SET cluster_id = ?, locked = 1 WHERE cluster_id IN ({marks})", [person_id, *others]
        ).rowcount
        conn.execute("UPDATE faces SET locked = 1 WHERE cluster_id = ?", (person_id,))
        conn.execute(f"DELETE FROM face_exclusions WHERE person_id IN ({marks})", others)
        conn.execute(f"DELETE FROM people WHERE id IN ({marks})", others)
        touch(conn, [person_id])
    return moved


def move_face(db: Database, face_id: int, person_id: int | None) -> int | None:
    """Place a face in a person, or (None) take it out of its person for good: "not this person". Returns the
    person it was in."""
    with db.write() as conn:
        face = conn.execute("SELECT id, cluster_id FROM faces WHERE id = ?", (face_id,)).fetchone()
        if face is None:
            raise not_found(f"There is no face {face_id}.")
        before = face["cluster_id"]
        if person_id is None:
            if before is not None:  # the person's other faces are confirmed: they hold it apart from this one
                conn.execute(
                    "INSERT OR IGNORE INTO face_exclusions (face_id, person_id) VALUES (?, ?)", (face_id, before)
                )
                conn.execute("UPDATE faces SET locked = 1 WHERE cluster_id = ? AND id != ?", (before, face_id))
            conn.execute("UPDATE faces SET cluster_id = NULL, locked = 0 WHERE id = ?", (face_id,))
        else:
            # The user saw the person and said "this face too": its faces are confirmed (placed) with it, so
            # that one moved face cannot pull the rest of its old person across; and it is not that person.
            person_row(conn, person_id)
            conn.execute("UPDATE faces SET locked = 1 WHERE cluster_id = ?", (person_id,))
            conn.execute("DELETE FROM face_exclusions WHERE face_id = ? AND person_id = ?", (face_id, person_id))
            if before is not None and before != person_id:
                conn.execute(
                    "INSERT OR IGNORE INTO face_exclusions (face_id, person_id) VALUES (?, ?)", (face_id, before)
                )
            conn.execute("UPDATE faces SET cluster_id = ?, locked = 1 WHERE id = ?", (person_id, face_id))
        touch(conn, [before, person_id])
    return before
