"""Routes the web page browses with: the timeline, search, and one photo's facts."""

from __future__ import annotations

import weakref
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from .. import search
from .routing import MAX_SQL_INT, PathQuery, Query, RouteTable

routes = RouteTable()
# One timeline order per database (an appliance has one; the tests start several in one process).
TIMELINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

SearchText = Annotated[
    str,
    StringConstraints(max_length=200),
    Field(description="Words and dates, all of which a photo must match: `cat 2023`, `Aamir beach`, `2019..2021`."),
]


class SearchQuery(Query):
    q: SearchText = ""


class SearchPageQuery(SearchQuery):
    offset: Annotated[int, Field(ge=0, le=MAX_SQL_INT)] = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class Term(BaseModel):
    text: str = Field(description="A word or date of the search, as understood (lower case).")
    means: str = Field(description="What it was taken to mean, in words.")


class Month(BaseModel):
    month: str | None = Field(description="YYYY-MM of capture; null for photos not analysed yet (no date known).")
    count: int


class Timeline(BaseModel):
    total: int
    pending: int = Field(description="Matching photos not analysed yet: no date, no thumbnail, listed last.")
    months: list[Month] = Field(description="Newest first, in the order /images/search pages through them.")
    terms: list[Term]


class Photo(BaseModel):
    path: str
    taken: str | None = Field(description="ISO local time of capture: the EXIF date, else the file's.")
    dated_by: Literal["exif", "file"] | None
    ready: bool = Field(description="Whether /images/thumbnail can show it now (false until it is analysed).")


class SearchResults(BaseModel):
    total: int
    images: list[Photo]
    terms: list[Term]


class PersonOnPhoto(BaseModel):
    person_id: int
    name: str | None


class PhotoDetails(BaseModel):
    path: str
    taken: str | None
    dated_by: Literal["exif", "file"] | None
    width: int | None
    height: int | None
    status: str = Field(description="done, pending or failed")
    error: str | None
    albums: list[str]
    people: list[PersonOnPhoto]
    classes: list[str]


def timeline_of(ctx) -> search.Timeline:
    timeline = TIMELINES.get(ctx.db)
    if timeline is None:
        timeline = TIMELINES[ctx.db] = search.Timeline(ctx.db, ctx.roots.roots)
    return timeline


def terms_of(found: search.Found) -> list[Term]:
    return [Term(text=term.text, means=term.means) for term in found.terms]


@routes.get("/images/timeline", query=SearchQuery, response=Timeline, cached=True)
def timeline(ctx, req: SearchQuery) -> Timeline:
    """How many photos match a search (all of them when q is empty) in each month of capture, newest first."""
    found = timeline_of(ctx).find(req.q)
    months = search.Timeline.months(found)
    return Timeline(
        total=sum(count for _, count in months),
        pending=sum(count for month, count in months if month is None),
        months=[Month(month=month, count=count) for month, count in months],
        terms=terms_of(found),
    )


@routes.get("/images/search", query=SearchPageQuery, response=SearchResults, cached=True)
def search_photos(ctx, req: SearchPageQuery) -> SearchResults:
    """Photos matching every word and date of q (an object, a person's name, an album, a folder or file name,
    a year, month, day or range), newest first; paged with offset and limit. An empty q lists the timeline."""
    timeline = timeline_of(ctx)
    found = timeline.find(req.q)
    photos = timeline.photos(found, req.offset, req.limit)
    return SearchResults(total=len(found.positions), images=[Photo(**p) for p in photos], terms=terms_of(found))


@routes.get("/images/details", query=PathQuery, response=PhotoDetails, errors=(403, 404))
def details(ctx, req: PathQuery) -> PhotoDetails:
    """What the viewer shows beside a photo: when it was taken, its albums, the people and objects on it."""
    return PhotoDetails(**search.details(ctx.db, ctx.roots.resolve(req.path)))
