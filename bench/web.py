"""The web page with a large library: 100,000 synthetic photos, in Debian's Chromium through Playwright.

    python bench/web.py [--photos 100000] [--scroll 5000]

Seeds a fresh data dir straight into the database (as bench/api.py does): photos over twenty years (more in
recent ones), nine in ten with an EXIF date, objects, faces of named and unnamed people, 50 albums; each
photo an empty file under a temporary library root (the server checks the file is there) whose thumbnail is
one of 64 real JPEGs in the thumbnail cache. Starts `appliance serve` and prints:
- for a few searches, the time of the first answer and of further pages (no cached body serves them);
- the page's time from navigation to the first 12 thumbnails shown, and from a click on a year to that
  year's first thumbnails shown;
- after scrolling down through the given number of photos: the JS heap, the DOM's nodes and its <img>s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import requests
from PIL import Image, ImageDraw
from server import peak_rss_mib, running_server

from appliance.datadir import DATABASE_FILE
from appliance.db import Database
from appliance.thumbnails import thumbnail_path

CHROMIUM = "/usr/bin/chromium"
FIRST_YEAR, LAST_YEAR = 2006, 2025
EVENTS = ["beach", "birthday", "hike", "garden", "school", "wedding", "holiday", "snow", "party", "zoo"]
LABELS = ["person", "dog", "cat", "car", "bicycle", "bird", "boat", "cake", "cup", "chair", "teddy bear", "bench"]
THUMBNAILS = 64


def capture_times(count: int, rng: random.Random) -> list[datetime]:
    """More photos in recent years, as in a real library (a phone takes more than a film camera did)."""
    years = list(range(FIRST_YEAR, LAST_YEAR + 1))
    weights = [1 + (year - FIRST_YEAR) for year in years]
    times = []
    for year in rng.choices(years, weights, k=count):
        start = datetime(year, 1, 1)
        times.append(start + timedelta(seconds=rng.randrange(365 * 24 * 3600)))
    return times


def write_thumbnails(data_dir: Path) -> list[str]:
    """64 real 320x240 JPEGs in the thumbnail cache, each under its own made-up content hash."""
    hashes = []
    for n in range(THUMBNAILS):
        digest = f"{n:02x}" * 32
        path = thumbnail_path(data_dir / "thumbnails", digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (320, 240), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
        ImageDraw.Draw(image).text((20, 20), f"thumbnail {n}", fill=(255, 255, 255))
        image.save(path, quality=80)
        hashes.append(digest)
    return hashes


def seed(data_dir: Path, library: Path, photos: int, rng: random.Random) -> None:
    data_dir.mkdir(parents=True)
    hashes = write_thumbnails(data_dir)
    rows = []
    for i, taken in enumerate(sorted(capture_times(photos, rng)), start=1):
        folder = library / str(taken.year) / f"{taken:%Y-%m} {EVENTS[(taken.month + taken.year) % len(EVENTS)]}"
        exif = rng.random() < 0.9  # the rest are dated by their file
        mtime_ns = int(taken.timestamp()) * 1_000_000_000
        rows.append(
            (i, str(folder / f"IMG_{i:06d}.jpg"), mtime_ns, hashes[i % THUMBNAILS], taken.isoformat() if exif else None)
        )
    for _, path, *_ in rows:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
    db = Database(data_dir / DATABASE_FILE)
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (id, path, size, mtime_ns, content_hash, width, height, taken_at, status)"
            " VALUES (?, ?, 1000, ?, ?, 4000, 3000, ?, 'done')",
            rows,
        )
        conn.executemany(
            "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (?, ?, 0.8, 0.1, 0.1, 0.5, 0.5)",
            ((i, label) for i in range(1, photos + 1) for label in rng.sample(LABELS, rng.randrange(4))),
        )
        people = 2000
        conn.executemany(
            "INSERT INTO people (id, name) VALUES (?, ?)",
            ((p, f"Person{p} Family" if p <= 200 else None) for p in range(1, people + 1)),
        )
        conn.executemany(
            "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints, cluster_id)"
            " VALUES (?, 0.9, 0.4, 0.2, 0.6, 0.5, '[]', ?)",
            ((i, int(rng.paretovariate(1.2)) % people + 1) for i in range(1, photos + 1) if rng.random() < 0.3),
        )
        for a in range(1, 51):
            conn.execute("INSERT INTO albums (id, name) VALUES (?, ?)", (a, f"Album {a}"))
            conn.executemany(
                "INSERT INTO album_images (album_id, image_id, position) VALUES (?, ?, ?)",
                ((a, (a * 7919 + k * 31) % photos + 1, k) for k in range(200)),
            )
    db.close()


def route_times(base: str, photos: int) -> None:
    """For each search: its first answer (/images/timeline: the words parsed and matched), then the p50 and max
    of 20 further pages of it at different offsets (no cached body serves them; the search is kept)."""
    session = requests.Session()
    timed(session, base + "/images/timeline", {})  # the timeline's order is built once
    searches = ["", "cat", "beach 2019", "Person1", "2012-07", "teddy bear", "album 7"]
    print(f"{'search':<14}{'photos':>9}{'first ms':>10}{'page p50 ms':>13}{'page max ms':>13}")
    for q in searches:
        first = timed(session, base + "/images/timeline", {"q": q})
        total = session.last["total"]
        pages = [
            timed(session, base + "/images/search", {"q": q, "offset": n * total // 20, "limit": 120})
            for n in range(20)
        ]
        shown = f"'{q}'"
        print(f"{shown:<14}{total:>9}{first:>10.1f}{statistics.median(pages):>13.1f}{max(pages):>13.1f}")
    # The first page after a write: the order is built again (and every cached body is dropped).
    after_write = []
    for n in range(5):
        session.post(base + "/albums/create-album", json={"name": f"bench {n}"}).raise_for_status()
        after_write.append(timed(session, base + "/images/search", {"offset": photos // 2, "limit": 120}))
    print(f"a page of the timeline right after a write: p50 {statistics.median(after_write):.1f} ms")


def timed(session: requests.Session, url: str, params: dict) -> float:
    start = time.perf_counter()
    response = session.get(url, params=params, timeout=60)
    elapsed = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    session.last = response.json()
    return elapsed


def page_figures(base: str, scroll_photos: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(base + "/")
        page.wait_for_function(SHOWN_THUMBNAILS, arg=12, timeout=60_000)
        first = page.evaluate("performance.now()")
        print(f"first 12 thumbnails shown: {first:.0f} ms after navigation started")
        page.reload()
        page.wait_for_function(SHOWN_THUMBNAILS, arg=12, timeout=60_000)
        print(f"again (a reload): {page.evaluate('performance.now()'):.0f} ms")

        year = 2012
        start = page.evaluate("performance.now()")
        page.click(f"#years button[data-year='{year}']")
        page.wait_for_function(YEAR_SHOWN, arg=year, timeout=60_000)
        jumped = page.evaluate("performance.now()") - start
        print(f"jump to {year}: its first thumbnails shown {jumped:.0f} ms after the click")

        page.evaluate("window.scrollTo(0, 0)")
        scroll_through(page, scroll_photos)
        metrics = memory_after_gc(page)
        dom = page.evaluate("({nodes: document.getElementsByTagName('*').length, images: document.images.length})")
        print(
            f"after scrolling through {scroll_photos} photos: JS heap {metrics['JSHeapUsedSize'] / 2**20:.1f} MiB,"
            f" {int(metrics['Nodes'])} DOM nodes ({dom['nodes']} elements), {dom['images']} <img> in the page"
        )
        browser.close()


# The first N tiles of the grid show a loaded thumbnail.
SHOWN_THUMBNAILS = """n => {
  const shown = [...document.querySelectorAll('#grid .tile img')].filter(i => i.complete && i.naturalWidth > 0);
  return shown.length >= n;
}"""
# A tile of the year's photos is in the viewport with its thumbnail loaded.
YEAR_SHOWN = """year => [...document.querySelectorAll('#grid .tile')].some(t => {
  const img = t.querySelector('img'), box = t.getBoundingClientRect();
  return t.dataset.taken && t.dataset.taken.startsWith(String(year)) && box.top >= 0 && box.bottom <= innerHeight
    && img && img.complete && img.naturalWidth > 0;
})"""


def scroll_through(page, photos: int) -> None:
    """A screen at a time, as a person flicking down, until the top tile is the photos-th of the timeline."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        top = page.evaluate(
            "Number(document.elementFromPoint(innerWidth / 2, innerHeight / 2)?.closest('.tile')?.dataset.index ?? -1)"
        )
        if top >= photos:
            return
        page.mouse.wheel(0, 700)
        page.wait_for_timeout(60)
    raise AssertionError("scrolling did not reach the photo in 10 minutes")


def memory_after_gc(page) -> dict:
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("Performance.enable")
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def memory_now(pid: int) -> str:
    """Anonymous memory apart from mapped file pages (SQLite's mmap of the database, counted once per reader)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return ", ".join(f"{name} {int(fields[name].split()[0]) / 1024:.0f} MiB" for name in ("RssAnon", "RssFile"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--scroll", type=int, default=5_000, help="photos to scroll through")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, library = Path(tmp) / "data", Path(tmp) / "library"
        started = time.perf_counter()
        seed(data_dir, library, args.photos, random.Random(13))
        print(f"seeded {args.photos} photos in {time.perf_counter() - started:.0f} s")
        with running_server(data_dir, "--library-root", str(library), "--no-watch") as (base, server):
            route_times(base, args.photos)
            page_figures(base, args.scroll)
            print(f"server peak RSS: {peak_rss_mib(server.pid):.1f} MiB; now {memory_now(server.pid)}")


if __name__ == "__main__":
    main()
