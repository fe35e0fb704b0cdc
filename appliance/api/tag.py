"""/tag routes: people found across the library, from face embeddings and their clusters."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from ..errors import bad_request, not_found
from ..faces import answers, corrections
from ..thumbnails import FACE_MARGIN, FACE_SIZE, face_path, write_face_crop
from ..words import plural
from .images import indexed_image
from .routing import MAX_SQL_INT, Message, PathQuery, Query, Request, RouteTable
from .web import cached_jpeg, decoded_original, disk_full_as_507, on_disk_image

routes = RouteTable()
MAX_FACE_SOURCE = 2048  # longest side decoded to crop a face: enough for a face a tenth of a 12 MP photo wide


class MatchQuery(Query):
    threshold: Annotated[float | None, Field(ge=-1, le=1)] = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100


class ClustersQuery(Query):
    min_size: Annotated[int, Field(ge=1, le=MAX_SQL_INT)] = 1


class SimilarPair(BaseModel):
    image1: str
    image2: str
    similarity: float


class Matches(BaseModel):
    similar_pairs: list[SimilarPair]


class Clusters(BaseModel):
    clusters: dict[str, list[str]] = Field(description="Cluster id to the paths showing that person.")


class Related(BaseModel):
    related_images: list[str]


@routes.get("/tag/match", query=MatchQuery, response=Matches, cached=True)
def match(ctx, req: MatchQuery) -> Matches:
    """Pairs of different images showing the same person, most similar first."""
    threshold = ctx.faces.threshold if req.threshold is None else req.threshold
    return Matches(similar_pairs=ctx.faces.matches(ctx.db, threshold, req.limit))


@routes.get("/tag/clusters", query=ClustersQuery, response=Clusters, cached=True)
def clusters(ctx, req: ClustersQuery) -> Clusters:
    """One cluster per person, largest first; ids stay stable as photos arrive."""
    return Clusters(clusters=ctx.faces.clusters(ctx.db, req.min_size))


@routes.get("/tag/related-images", query=PathQuery, response=Related, errors=(403, 404))
def related_images(ctx, req: PathQuery) -> Related:
    """Other images showing any person in this one, most similar first."""
    image = indexed_image(ctx, req.path)
    return Related(related_images=ctx.faces.related_images(ctx.db, image["id"]))


# -- people: who is who, and what users say about it ---------------------------------------------------------

PersonId = Annotated[int, Field(ge=1, le=MAX_SQL_INT)]


class PersonPath(Query):
    person_id: PersonId


class FacePath(Query):
    face_id: Annotated[int, Field(ge=1, le=MAX_SQL_INT)]


class PeopleQuery(Query):
    include_hidden: bool = False


class PageQuery(Query):
    offset: Annotated[int, Field(ge=0, le=MAX_SQL_INT)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class PersonFacesQuery(PageQuery):
    person_id: PersonId


class PersonChange(Request):
    name: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=128)] = Field(
        None, description="A name; an empty one clears it. Naming places the person's faces (kept together)."
    )
    hidden: bool | None = Field(None, description="Hidden people are left out of /tag/clusters and the page.")


class Merge(Request):
    people: Annotated[list[PersonId], Field(min_length=1, max_length=1000)]


class FacePlacement(Request):
    person_id: PersonId | None = Field(description="The person this face is; null: not the person it was in.")


class FaceBox(BaseModel):
    face_id: int
    person_id: int | None = Field(description="null: unassigned (a poor face, or taken out of its person).")
    name: str | None
    score: float
    box: list[float] = Field(description="[x1, y1, x2, y2] as fractions of the width and height.")
    good: bool = Field(description="Good enough to make or join a person (size, pose, detector score).")


class ImageFaces(BaseModel):
    faces: list[FaceBox]


class Person(BaseModel):
    person_id: int | None = Field(description="null: the entry of the unassigned faces.")
    name: str | None
    photos: int
    hidden: bool
    cover_face: int = Field(description="A face to show for this person (see /tag/faces/{face_id}/thumbnail).")
    cover: str = Field(description="The path of the photo that face is in.")


class People(BaseModel):
    people: list[Person]


class PersonFace(BaseModel):
    face_id: int
    path: str
    good: bool
    placed: bool = Field(description="Placed by a user (moved, merged, named): no re-clustering moves it.")


class PersonFaces(BaseModel):
    faces: list[PersonFace]


@routes.get("/tag/faces", query=PathQuery, response=ImageFaces, errors=(403, 404))
def image_faces(ctx, req: PathQuery) -> ImageFaces:
    """The faces found in one image, with the person (and name) each belongs to."""
    image = indexed_image(ctx, req.path)
    return ImageFaces(faces=[FaceBox(**face) for face in answers.image_faces(ctx.db, image["id"])])


@routes.get("/tag/people", query=PeopleQuery, response=People, cached=True)
def people(ctx, req: PeopleQuery) -> People:
    """Every person with a name if given, a photo count and a face to show, largest first; then the
    unassigned faces as one entry (person_id null). Hidden people only with include_hidden."""
    return People(people=[Person(**person) for person in answers.people(ctx.db, req.include_hidden)])


@routes.get("/tag/people/{person_id}/faces", query=PersonFacesQuery, response=PersonFaces, errors=(404,))
def person_faces(ctx, req: PersonFacesQuery) -> PersonFaces:
    """The faces of one person, best first (paged)."""
    corrections.person_row(ctx.db.read(), req.person_id)
    faces = answers.person_faces(ctx.db, req.person_id, req.limit, req.offset)
    return PersonFaces(faces=[PersonFace(**face) for face in faces])


@routes.get("/tag/unassigned-faces", query=PageQuery, response=PersonFaces)
def unassigned_faces(ctx, req: PageQuery) -> PersonFaces:
    """Faces that belong to no person: poor ones, and those taken out of a person."""
    faces = answers.person_faces(ctx.db, None, req.limit, req.offset)
    return PersonFaces(faces=[PersonFace(**face) for face in faces])


@routes.put("/tag/people/{person_id}", query=PersonPath, body=PersonChange, response=Message, errors=(404,))
def change_person(ctx, req: PersonChange, person: PersonPath) -> Message:
    """Name a person (an empty name clears it), or hide or show them."""
    if req.name is None and req.hidden is None:
        raise bad_request("Send a name, hidden, or both.")
    corrections.update_person(ctx.db, person.person_id, req.name, req.hidden)
    return Message(message=f"Person {person.person_id} updated")


@routes.post("/tag/people/{person_id}/merge", query=PersonPath, body=Merge, response=Message, errors=(404,))
def merge_people(ctx, req: Merge, person: PersonPath) -> Message:
    """Merge other people into this one: their faces are this person's from now on (no re-clustering
    undoes it); this person keeps its name, or takes the first of theirs."""
    moved = corrections.merge(ctx.db, person.person_id, req.people)
    merged = plural(len(set(req.people) - {person.person_id}), "person", "people")
    return Message(message=f"Merged {merged} into person {person.person_id} ({plural(moved, 'face')} moved)")


@routes.put("/tag/faces/{face_id}", query=FacePath, body=FacePlacement, response=Message, errors=(404,))
def place_face(ctx, req: FacePlacement, face: FacePath) -> Message:
    """Move a face to a person, or (person_id null) take it out of its person: "not this person", for good."""
    corrections.move_face(ctx.db, face.face_id, req.person_id)
    where = "taken out of its person" if req.person_id is None else f"placed in person {req.person_id}"
    return Message(message=f"Face {face.face_id} {where}")


@routes.get("/tag/faces/{face_id}/thumbnail", query=FacePath, errors=(404, 507), content_types=("image/jpeg",))
def face_thumbnail(ctx, req: FacePath):
    """A square JPEG crop of one face, made from the original the first time, then cached."""
    row = (
        ctx.db.read()
        .execute(
            "SELECT faces.x1, faces.y1, faces.x2, faces.y2, images.path FROM faces"
            " JOIN images ON images.id = faces.image_id WHERE faces.id = ?",
            (req.face_id,),
        )
        .fetchone()
    )
    if row is None:
        raise not_found(f"There is no face {req.face_id}.")
    image = on_disk_image(ctx, row["path"])
    path = face_path(ctx.settings.data_dir / "thumbnails", image["content_hash"], req.face_id)
    if not path.exists():
        box = (row["x1"], row["y1"], row["x2"], row["y2"])
        # Decode large enough that the face alone spans FACE_SIZE pixels (small faces of big photos too).
        size = min(MAX_FACE_SOURCE, max(640, round(FACE_SIZE * (1 + 2 * FACE_MARGIN) / max(box[2] - box[0], 1e-3))))
        pixels = decoded_original(ctx, image, size)
        with disk_full_as_507(ctx):
            write_face_crop(pixels, box, path)
    return cached_jpeg(path)
