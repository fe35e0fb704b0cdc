"""The web page's queries: the timeline (photos by month of capture, newest first), search, one photo's facts.

A search is a few terms, all of which a photo must match: a date (2023, 2023-07, 2023-07-14, 2019..2021,
2019-2021, a month's name) or a word, which matches an object class, a person's name, an album's name or a
folder or file name below a library root. Each term is turned into one SQL condition with its parameters.
"""

from __future__ import annotations

import re
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from .catalog import LISTED, image_row
from .db import Database
from .errors import bad_request

# When a photo was taken: its EXIF date, else its file's date (local time, like EXIF); NULL until analysed.
TAKEN = (
    "coalesce(images.taken_at, strftime('%Y-%m-%dT%H:%M:%S', images.mtime_ns / 1000000000, 'unixepoch', 'localtime'))"
)
MAX_TERMS = 8
FIRST_YEAR = 1826  # the oldest surviving photograph
MONTHS = "january february march april may june july august september october november december".split()


@dataclass
class Term:
    """One part of a search: what the user typed, what it was taken to mean, and its SQL condition."""

    text: str
    means: str
    sql: str
    params: list = field(default_factory=list)


@dataclass
class Search:
    terms: list[Term]

    def where(self) -> tuple[str, list]:
        """The WHERE clause of every listed photo matching all terms."""
        sql = " AND ".join([LISTED, *(f"({term.sql})" for term in self.terms)])
        return sql, [param for term in self.terms for param in term.params]


# -- reading what was typed --------------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    """Words, lower-cased; "quoted words" stay together (a label like "teddy bear", a folder "Summer 2021")."""
    return [quoted or word for quoted, word in re.findall(r'"([^"]+)"|(\S+)', text.lower())]


def date_bounds(text: str) -> tuple[str, str] | None:
    """[start, end) of a year, month or day written as 2023, 2023-07 or 2023-07-14; None for anything else."""
    match = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", text)
    if not match:
        return None
    year, month, day = (int(part) if part else None for part in match.groups())
    if not FIRST_YEAR <= year < 2200:  # other numbers ("0034", a file's) are words
        return None
    try:
        if month is None:
            start, end = date(year, 1, 1), date(year + 1, 1, 1)
        elif day is None:
            start = date(year, month, 1)
            end = date(year + month // 12, month % 12 + 1, 1)
        else:
            start = date(year, month, day)
            end = start + timedelta(days=1)
    except ValueError:  # month 13, 31 June, year 9999 + 1
        return None
    return start.isoformat(), end.isoformat()


def date_range(text: str) -> tuple[str, str] | None:
    """A date, or a range of two (2019..2021, 2019-2021): the range ends with the end of its second date."""
    for separator in ("..", "-"):
        first, found, second = text.partition(separator)
        if found and (start := date_bounds(first)) and (end := date_bounds(second)) and start[0] < end[1]:
            return start[0], end[1]
    return date_bounds(text)


def date_term(text: str) -> Term | None:
    bounds = date_range(text)
    if bounds is None:
        return None
    return Term(text, f"taken in {text}", f"{TAKEN} >= ? AND {TAKEN} < ?", list(bounds))


def month_term(text: str) -> Term | None:
    """A month's name (or its first three letters) means that month of any year."""
    names = [name for name in MONTHS if text == name or (len(text) >= 3 and name.startswith(text))]
    if len(names) != 1:
        return None
    number = MONTHS.index(names[0]) + 1
    return Term(text, f"taken in {names[0].capitalize()}", f"substr({TAKEN}, 6, 2) = ?", [f"{number:02d}"])


# -- words: objects, people, albums, folder and file names ----------------------------------------------------


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def singulars(word: str) -> list[str]:
    """The object classes are singular ("cat"): "cats" and "buses" find them too."""
    forms = [word]
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s"):
        forms.append(word[:-1])
    return forms


OBJECTS = "SELECT image_id FROM objects WHERE label IN ({marks})"
NAMED_PEOPLE = (
    "SELECT faces.image_id FROM faces JOIN people ON people.id = faces.cluster_id"
    " WHERE (people.name LIKE ? ESCAPE '\\' OR people.name LIKE ? ESCAPE '\\') AND NOT coalesce(people.hidden, 0)"
)
NAMED_ALBUMS = (
    "SELECT album_images.image_id FROM album_images JOIN albums ON albums.id = album_images.album_id"
    " WHERE albums.name LIKE ? ESCAPE '\\' OR albums.name LIKE ? ESCAPE '\\'"
)


class WordMatcher:
    """Turns a word into a condition over the categories where it names something, and says which."""

    def __init__(self, conn, roots: list[Path]):
        self.conn = conn
        self.roots = roots

    def term(self, word: str) -> Term:
        parts: list[tuple[str, str, list]] = [
            part for part in (self.objects(word), self.people(word), self.albums(word), self.paths(word)) if part
        ]
        if not parts:
            return Term(word, f"nothing is called “{word}”", "0")
        means = "; ".join(meaning for meaning, _, _ in parts)
        sql = " OR ".join(condition for _, condition, _ in parts)
        return Term(word, means, sql, [param for _, _, params in parts for param in params])

    def objects(self, word: str):
        forms = singulars(word)
        marks = ", ".join("?" * len(forms))
        found = self.conn.execute(f"SELECT DISTINCT label FROM objects WHERE label IN ({marks})", forms).fetchall()
        if not found:
            return None
        labels = [row[0] for row in found]
        return f"object {' or '.join(labels)}", f"images.id IN ({OBJECTS.format(marks=marks)})", forms

    def people(self, word: str):
        """A word that begins a name, or a word in it: "aamir" and "khan" both find "Aamir Khan"."""
        names = (
            "SELECT DISTINCT name FROM people WHERE (name LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')"
            " AND id IN (SELECT cluster_id FROM faces) AND NOT coalesce(hidden, 0) ORDER BY name LIMIT 4"
        )
        return self.named(word, "person", names, NAMED_PEOPLE)

    def albums(self, word: str):
        names = "SELECT name FROM albums WHERE name LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' ORDER BY name LIMIT 4"
        return self.named(word, "album", names, NAMED_ALBUMS)

    def named(self, word: str, kind: str, names_query: str, images_query: str):
        """Things whose name begins with the word or has a word beginning with it: a few of their names (to say
        what the word was taken for) and the condition on the images that have one."""
        params = [f"{like_escape(word)}%", f"% {like_escape(word)}%"]
        names = self.conn.execute(names_query, params).fetchall()
        if not names:
            return None
        return f"{kind} {listing([row[0] for row in names])}", f"images.id IN ({images_query})", params

    def paths(self, word: str):
        """Folder and file names below a library root (the root's own path would match every photo)."""
        patterns = [f"{like_escape(str(root).rstrip('/'))}/%{like_escape(word)}%" for root in self.roots]
        if not patterns:
            return None
        condition = " OR ".join("images.path LIKE ? ESCAPE '\\'" for _ in patterns)
        if self.conn.execute(f"SELECT 1 FROM images WHERE {condition} LIMIT 1", patterns).fetchone() is None:
            return None
        return f"a folder or file name with “{word}”", condition, patterns

    def is_label(self, phrase: str) -> bool:
        return self.conn.execute("SELECT 1 FROM objects WHERE label = ? LIMIT 1", (phrase,)).fetchone() is not None


def listing(names: list[str]) -> str:
    shown = names[:3]
    return ", ".join(shown) + (" and others" if len(names) > 3 else "")


def joined_labels(words: list[str], matcher: WordMatcher) -> list[str]:
    """Two words that together are an object class ("teddy bear", "cell phone") are one term."""
    joined: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words) and matcher.is_label(f"{words[i]} {words[i + 1]}"):
            joined.append(f"{words[i]} {words[i + 1]}")
            i += 2
        else:
            joined.append(words[i])
            i += 1
    return joined


def parse(conn, text: str, roots: list[Path]) -> Search:
    """The terms of a search; an empty one matches every photo (the timeline)."""
    words = tokens(text)
    if len(words) > MAX_TERMS:
        raise bad_request(f"A search takes at most {MAX_TERMS} words; this one has {len(words)}.")
    matcher = WordMatcher(conn, roots)
    terms = []
    for word in joined_labels(words, matcher):
        terms.append(date_term(word) or either(month_term(word), matcher.term(word)))
    return Search(terms)


def either(month: Term | None, word: Term) -> Term:
    """A month's name may also be a word ("may", a folder "March"): a photo matching either will do."""
    if month is None:
        return word
    if word.sql == "0":
        return month
    return Term(word.text, f"{month.means}; {word.means}", f"({month.sql}) OR ({word.sql})", month.params + word.params)


# -- answers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """Every listed photo's id in timeline order, as of one database generation, with its month."""

    generation: int
    ids: array  # newest first; those not analysed yet (no date) last
    month_of: array  # for each position in `ids`, the index of its month in `months`
    months: list[str | None]  # "2023-07", ..., None for not analysed yet


def build_order(db: Database, generation: int) -> Order:
    ids, month_of, months = array("q"), array("H"), []
    cursor = db.read().cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        f"SELECT id, {TAKEN} AS taken FROM images WHERE {LISTED} ORDER BY taken IS NULL, taken DESC, path"
    )
    for image_id, taken in rows:
        month = taken[:7] if taken else None
        if not months or months[-1] != month:
            months.append(month)
        ids.append(image_id)
        month_of.append(len(months) - 1)
    return Order(generation, ids, month_of, months)


@dataclass(frozen=True)
class Found:
    """A search's terms and where its photos are in one order of the timeline."""

    terms: list[Term]
    order: Order
    positions: Sequence[int]


class Timeline:
    """The timeline's order, kept in memory (ids only: under 1 MB for 100,000 photos) until the next write,
    with the last few searches' places in it: with no index on the capture date, SQLite takes 150 ms to order
    100,000 photos, and matching a search 50-100 ms, which every page of them would pay."""

    SEARCHES_KEPT = 16

    def __init__(self, db: Database, roots: list[Path]):
        self.db = db
        self.roots = roots
        self._lock = threading.Lock()  # one rebuild at a time; the others wait for it and use it
        self._order: Order | None = None
        self._found: OrderedDict[tuple[str, ...], Found] = OrderedDict()

    def order(self) -> Order:
        generation = self.db.generation
        with self._lock:
            if self._order is None or self._order.generation != generation:
                self._order = build_order(self.db, generation)
                self._found.clear()
            return self._order

    def find(self, text: str) -> Found:
        """The photos matching a search (all of them for an empty one), from the kept ones when it is there."""
        key = tuple(tokens(text))
        order = self.order()
        with self._lock:
            found = self._found.get(key)
            if found is not None and found.order is order:
                self._found.move_to_end(key)
                return found
        search = parse(self.db.read(), text, self.roots)
        found = Found(search.terms, order, self.positions(order, search))
        with self._lock:
            if self._order is order:  # else a write came meanwhile: not worth keeping
                self._found[key] = found
                while len(self._found) > self.SEARCHES_KEPT:
                    self._found.popitem(last=False)
        return found

    def positions(self, order: Order, search: Search) -> Sequence[int]:
        """Where the matching photos are in the order (every position for an empty search)."""
        if not search.terms:
            return range(len(order.ids))
        where, params = search.where()
        cursor = self.db.read().cursor()
        cursor.row_factory = None
        matching = {row[0] for row in cursor.execute(f"SELECT id FROM images WHERE {where}", params)}
        return array("q", (position for position, image_id in enumerate(order.ids) if image_id in matching))

    @staticmethod
    def months(found: Found) -> list[tuple[str | None, int]]:
        """(month, photos) of every month with matching photos, newest first; None last: not analysed yet."""
        order = found.order
        counts = Counter(order.month_of[position] for position in found.positions)
        return [(order.months[index], counts[index]) for index in sorted(counts)]

    def photos(self, found: Found, offset: int, limit: int) -> list[dict]:
        """One page of the matching photos in timeline order."""
        ids = [found.order.ids[position] for position in found.positions[offset : offset + limit]]
        return photo_rows(self.db, ids)


def photo_rows(db: Database, ids: list[int]) -> list[dict]:
    """The page's facts of these photos, in the order given (one that left the index meanwhile is skipped)."""
    cursor = db.read().cursor()
    cursor.row_factory = None
    marks = ", ".join("?" * len(ids))
    rows = {
        row[0]: row[1:]
        for row in cursor.execute(
            f"SELECT id, path, {TAKEN}, taken_at IS NOT NULL, content_hash IS NOT NULL FROM images"
            f" WHERE id IN ({marks}) AND {LISTED}",
            ids,
        )
    }
    return [
        {"path": path, "taken": taken, "dated_by": dated_by(taken, exif), "ready": bool(ready)}
        for path, taken, exif, ready in (rows[image_id] for image_id in ids if image_id in rows)
    ]


def dated_by(taken: str | None, exif: int) -> str | None:
    if taken is None:
        return None
    return "exif" if exif else "file"


def details(db: Database, path: Path) -> dict:
    """What the viewer shows beside a photo: its date, the albums it is in, the people and objects on it."""
    with db.snapshot() as conn:
        image = image_row(conn, path)
        image_id = image["id"]
        (taken,) = conn.execute(f"SELECT {TAKEN} FROM images WHERE id = ?", (image_id,)).fetchone()
        albums = conn.execute(
            "SELECT albums.name FROM album_images JOIN albums ON albums.id = album_images.album_id"
            " WHERE album_images.image_id = ? ORDER BY albums.name",
            (image_id,),
        ).fetchall()
        people = conn.execute(
            "SELECT DISTINCT faces.cluster_id, people.name FROM faces LEFT JOIN people ON people.id = faces.cluster_id"
            " WHERE faces.image_id = ? AND faces.cluster_id IS NOT NULL ORDER BY faces.cluster_id",
            (image_id,),
        ).fetchall()
        classes = conn.execute(
            "SELECT DISTINCT label FROM objects WHERE image_id = ? ORDER BY label", (image_id,)
        ).fetchall()
    return {
        "path": image["path"],
        "taken": taken,
        "dated_by": dated_by(taken, image["taken_at"] is not None),
        "width": image["width"],
        "height": image["height"],
        "status": image["status"],
        "error": image["error"],
        "albums": [row[0] for row in albums],
        "people": [{"person_id": row[0], "name": row[1]} for row in people],
        "classes": [row[0] for row in classes],
    }
