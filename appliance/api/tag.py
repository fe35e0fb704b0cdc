"""/tag routes: people found across the library, from face embeddings and their clusters."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from .images import indexed_image
from .routing import MAX_SQL_INT, PathQuery, Query, RouteTable

routes = RouteTable()


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
