"""Grouping faces into people: a pure function of the faces, their kNN edges and the user's corrections.

Edges are taken strongest first, as single linkage would, but two groups join only if they look alike as
wholes: their average pairwise similarity (from their summed vectors, no pairs listed) must reach the bar too.
Two passes: first tight cores (a bar above the threshold), then the threshold between them. One ambiguous
face between two people ends up inside one core and cannot chain the two together (single linkage did,
through that one face). Poor faces (small, turned aside, low score) never seed or bridge: they are attached
afterwards to the group they clearly belong to, or stay unassigned.

Constraints are kept face by face: two faces of one photo are two people (a collage, a mirror: the weaker
match of the two is set apart, the rest of the person stays whole); a face the user took out of a person
never joins it again; faces the user placed (moved, merged, named) keep their person and hold it together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

UNASSIGNED = -1
CORE_MARGIN = 0.1  # the first pass builds cores of faces this much more alike than the threshold
SLICE = 100_000


@dataclass
class Faces:
    """The faces to group, as parallel arrays (index i is one face)."""

    image: np.ndarray  # image id per face
    vectors: np.ndarray  # L2-normalised rows
    good: np.ndarray  # bool: good enough to seed or bridge a person
    anchor: np.ndarray  # person id a user placed this face in, else 0
    excluded: dict[int, set[int]] = field(default_factory=dict)  # face index -> people it must not join


class Grouping:
    """Groups under construction: each has a root (one of its faces), members, a vector sum, its photos. A face
    alone is a group of its own with nothing stored for it (a million faces start that way: a list and a dict
    per face were half a gigabyte)."""

    def __init__(self, faces: Faces):
        self.faces = faces
        self.root = np.arange(len(faces.image))
        self.members: dict[int, list[int]] = {}  # groups of more than one face, as the next three
        self.sums: dict[int, np.ndarray] = {}
        self.photos: dict[int, dict[int, list[int]]] = {}
        self.person: dict[int, int] = {}  # root -> anchored person

    def size(self, group: int) -> int:
        members = self.members.get(group)
        return 1 if members is None else len(members)

    def members_of(self, group: int) -> list[int]:
        return self.members.get(group) or [group]

    def photos_of(self, group: int) -> dict[int, list[int]]:
        return self.photos.get(group) or {int(self.faces.image[group]): [group]}

    def vector_sum(self, group: int) -> np.ndarray:
        return self.sums.get(group, self.faces.vectors[group])

    def likeness(self, a: int, b: int) -> float:
        """Average similarity over every pair of faces of the two groups: sum_a . sum_b / (n_a n_b)."""
        return float(self.vector_sum(a) @ self.vector_sum(b)) / (self.size(a) * self.size(b))

    def join(self, a: int, b: int) -> int:
        """Merge the smaller group into the larger; returns the surviving root."""
        if self.size(a) < self.size(b):
            a, b = b, a
        self.sums[a] = self.vector_sum(a) + self.vector_sum(b)
        self.sums.pop(b, None)
        moved = self.members_of(b)
        self.members.pop(b, None)
        self.root[moved] = a
        self.members.setdefault(a, [a]).extend(moved)  # in place: a large group grows one face at a time
        photos = self.photos[a] = self.photos_of(a)
        for image, faces in self.photos_of(b).items():
            photos.setdefault(image, []).extend(faces)
        self.photos.pop(b, None)
        if b in self.person:
            self.person[a] = self.person.pop(b)
        return a

    def set_apart(self, face: int) -> None:
        """Take one face out of its group into a group of its own."""
        group = int(self.root[face])
        if self.size(group) == 1:
            return
        if face == group:  # the root leaves: another member becomes the root
            new_root = next(m for m in self.members[group] if m != face)
            for m in self.members[group]:
                self.root[m] = new_root
            self.members[new_root] = self.members.pop(group)
            self.photos[new_root] = self.photos.pop(group)
            self.sums[new_root] = self.sums.pop(group)
            if group in self.person:
                self.person[new_root] = self.person.pop(group)
            group = new_root
        self.members[group].remove(face)
        image = int(self.faces.image[face])
        self.photos[group][image].remove(face)
        if not self.photos[group][image]:
            del self.photos[group][image]
        self.sums[group] = self.sums[group] - self.faces.vectors[face]
        if len(self.members[group]) == 1:  # the root alone is left
            del self.members[group], self.photos[group], self.sums[group]
        self.root[face] = face

    def conflicts(self, group: int) -> list[int]:
        """Faces the constraints put out of this group: for each photo seen twice, all but the face most like
        the group (placed faces stay: the user said so); faces excluded from the group's person."""
        faces, out = self.faces, []
        centroid = self.vector_sum(group)
        for same_photo in self.photos_of(group).values():
            if len(same_photo) > 1:
                placed = [f for f in same_photo if faces.anchor[f]]
                keep = placed or [max(same_photo, key=lambda f: float(faces.vectors[f] @ centroid))]
                out += [f for f in same_photo if f not in keep]
        person = self.person.get(group)
        if person:
            out += [f for f in self.members_of(group) if person in faces.excluded.get(f, ()) and not faces.anchor[f]]
        return out


def group_faces(
    faces: Faces,
    edges: np.ndarray,
    threshold: float,
    attach_threshold: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray, dict[int, int]] | None:
    """A group label per face (the index of one of its faces; UNASSIGNED for a poor face that fits nowhere)
    and the person each anchored group belongs to. `edges`: rows of (similarity, i, j) over face indices.
    None when `should_stop` said so."""
    grouping = Grouping(faces)
    for person in np.unique(faces.anchor[faces.anchor > 0]):
        placed = np.flatnonzero(faces.anchor == person)
        group = int(placed[0])
        grouping.person[group] = int(person)
        for face in placed[1:]:
            group = grouping.join(group, int(grouping.root[face]))

    # The edges' order, strongest first (no sorted copy of them); a pass walks the prefix at or above its bar.
    strongest_first = np.argsort(-edges[:, 0], kind="stable")
    for bar in (threshold + CORE_MARGIN, threshold):
        passing = strongest_first[: int(np.count_nonzero(edges[:, 0] >= bar))]
        for start in range(0, len(passing), SLICE):  # slices: no Python list of every edge at once
            if should_stop():
                return None
            for i, j in edges[passing[start : start + SLICE], 1:].astype(np.int64).tolist():
                join_if_alike(grouping, i, j, bar)

    del strongest_first, passing
    labels = grouping.root.copy()
    attach_poor_faces(grouping, edges, attach_threshold, labels)
    return labels, dict(grouping.person)


def join_if_alike(grouping: Grouping, i: int, j: int, bar: float) -> None:
    faces = grouping.faces
    if not (faces.good[i] or faces.anchor[i]) or not (faces.good[j] or faces.anchor[j]):
        return  # poor faces never seed or bridge
    a, b = int(grouping.root[i]), int(grouping.root[j])
    if a == b:
        return
    pa, pb = grouping.person.get(a), grouping.person.get(b)
    if pa and pb and pa != pb:
        return  # two people the user placed stay two
    if grouping.likeness(a, b) < bar:
        return  # alike through one pair, not as wholes: no chaining
    group = grouping.join(a, b)
    for face in grouping.conflicts(group):
        grouping.set_apart(face)


def attach_poor_faces(grouping: Grouping, edges: np.ndarray, attach_threshold: float, labels: np.ndarray) -> None:
    """A poor face joins the group of its most similar good neighbour when that match is clear (and breaks no
    constraint); otherwise it stays unassigned."""
    faces = grouping.faces
    poor = ~faces.good & (faces.anchor == 0)
    best: dict[int, tuple[float, int]] = {}
    for start in range(0, len(edges), SLICE):  # slices: no temporary arrays the size of every edge
        part = edges[start : start + SLICE]
        i, j = part[:, 1].astype(np.int64), part[:, 2].astype(np.int64)
        useful = (part[:, 0] >= attach_threshold) & (poor[i] != poor[j])  # a poor face and a good one
        for similarity, a, b in part[useful].tolist():
            face, other = (int(a), int(b)) if poor[int(a)] else (int(b), int(a))
            if similarity > best.get(face, (-2.0, -1))[0]:
                best[face] = (similarity, other)
    for face in np.flatnonzero(poor):
        labels[face] = UNASSIGNED
        if int(face) not in best:
            continue
        group = int(grouping.root[best[int(face)][1]])
        person = grouping.person.get(group)
        if int(faces.image[face]) in grouping.photos_of(group) or person in faces.excluded.get(int(face), ()):
            continue
        labels[face] = group


def stable_ids(
    labels: Sequence[int],
    old: Sequence[int | None],
    anchored: dict[int, int],
    allocate: Callable[[], int],
) -> list[int | None]:
    """A person id per face: anchored groups keep their person; every other group takes the old id it overlaps
    most (each id once, never an anchored person's), else a new one from `allocate`; unassigned stays None."""
    reserved = set(anchored.values())
    chosen = dict(anchored)
    overlap: dict[tuple[int, int], int] = {}
    for label, previous in zip(labels, old, strict=True):
        if label != UNASSIGNED and previous is not None and label not in chosen and previous not in reserved:
            overlap[(label, previous)] = overlap.get((label, previous), 0) + 1
    used = set(reserved)
    for (label, previous), _ in sorted(overlap.items(), key=lambda item: -item[1]):
        if label not in chosen and previous not in used:
            chosen[label] = previous
            used.add(previous)
    result: list[int | None] = []
    for label in labels:
        if label == UNASSIGNED:
            result.append(None)
            continue
        if label not in chosen:
            chosen[label] = allocate()
        result.append(chosen[label])
    return result
