"""The web page end to end, in headless Chromium (Debian's) against a real server on loopback.

Every page the tests open is watched: an uncaught error, a console error or an answer of 400 or more fails the
test (but for the wrong-token test's 401), and axe-core (tests/web, installed by .ci/run) checks each view.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from .conftest import FACES, PHOTOS, PROJECT, make_images

CHROMIUM = "/usr/bin/chromium"
AXE = PROJECT / "tests" / "web" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = PROJECT / "docs" / "screenshots"
# Chromium must not reach for Google's services: this machine's network is closed.
QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1100, "height": 760}
PHONE = {"width": 390, "height": 844}

# The test photos, copied into folders and dated by their files (none has an EXIF date; zidane.jpg gets one).
DATED = {
    "cat.png": ("2023 garden", "2023-05-14"),
    "cat.bmp": ("2023 garden", "2023-05-20"),
    "000000000025.jpg": ("2023 garden", "2023-04-02"),
    "cat (copy).png": ("2022 home", "2022-12-24"),
    "three_khans.png": ("2022 home", "2022-12-25"),
    "grace_hopper.bmp": ("2022 home", "2022-03-08"),
    "amir_khan.png": ("2021 beach", "2021-07-10"),
    "000000000009.jpg": ("2021 beach", "2021-07-11"),
    "000000000030.jpg": ("2021 beach", "2021-07-12"),
    "salman_khan.png": ("2020 city", "2020-02-01"),
    "test_2_faces.png": ("2020 city", "2020-02-02"),
    "000000000034.jpg": ("2020 city", "2020-09-30"),
    "bird.bmp": ("2019 park", "2019-05-05"),
    "empty.png": ("2019 park", "2019-05-06"),
    "zidane.jpg": ("2023 garden", "2023-06-01"),  # its EXIF says 2019-06-01 14:30
}
EXIF_DATE = "2019:06:01 14:30:00"


def make_dated_library(root: Path) -> dict[str, Path]:
    """The 15 test photos in dated folders; returns name -> path."""
    paths = {}
    for name, (folder, day) in DATED.items():
        target = root / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == "zidane.jpg":
            with Image.open(PHOTOS / name) as image:
                exif = image.getexif()
                exif.get_ifd(0x8769)[0x9003] = EXIF_DATE  # DateTimeOriginal
                image.save(target, exif=exif, quality=90)
        else:
            shutil.copyfile(PHOTOS / name, target)
        stamp = datetime.fromisoformat(f"{day}T12:00:00").timestamp()
        os.utime(target, (stamp, stamp))
        paths[name] = target
    return paths


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        yield browser
        browser.close()


class Watched:
    """A page whose uncaught errors, console errors and failed requests are collected."""

    def __init__(self, browser, url: str, viewport=DESKTOP):
        self.page = browser.new_page(viewport=viewport)
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.requested: list[str] = []
        self.questions: list[str] = []  # what confirm() asked, each answered yes
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.on("dialog", self.answer)
        self.page.goto(url + "/")

    def answer(self, dialog) -> None:
        self.questions.append(dialog.message)
        dialog.accept()

    def assert_clean(self, *expected: str) -> None:
        """Nothing went wrong but the refusals the test provoked ("403 /images/add-folder"), each of which the
        console reports too."""
        failed = [f for f in self.failed if f.replace(self.page.url.rstrip("/"), "").split("?")[0] not in expected]
        statuses = {refusal.split()[0] for refusal in expected}
        errors = [e for e in self.errors if not any(f"status of {status}" in e for status in statuses)]
        assert not errors and not failed, (errors, failed)
        # the page's icon is inline: no /favicon.ico to fail
        assert not [url for url in self.requested if url.endswith("/favicon.ico")]
        assert self.page.get_attribute("link[rel=icon]", "href").startswith("data:image/svg+xml,")


@pytest.fixture
def open_page(chromium):
    pages = []

    def open_(client, viewport=DESKTOP) -> Watched:
        watched = Watched(chromium, client.url, viewport)
        pages.append(watched)
        return watched

    yield open_
    for watched in pages:
        watched.page.close()


def view(page, name: str) -> None:
    page.click(f"nav button[data-view={name}]")


def assert_accessible(page, where: str) -> None:
    """axe-core finds nothing serious or critical in the page as it is now."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)"""
    )
    assert violations == [], f"{where}: {violations}"


def assert_no_sideways_scroll(page, where: str) -> None:
    page.evaluate("scrollTo(200, scrollY)")
    width = page.evaluate("[document.documentElement.scrollWidth, innerWidth, scrollX]")
    assert width[0] <= width[1] and width[2] == 0, f"{where}: {width}"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def tiles(page):
    """The grid's tiles whose photo has arrived."""
    return page.locator("#grid .tile[data-path]")


def shown_paths(page) -> set[str]:
    return set(page.eval_on_selector_all("#grid .tile[data-path]", "ts => ts.map(t => t.dataset.path)"))


def thumbnails_loaded(page) -> None:
    page.wait_for_function("[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)")


def search(page, text: str) -> None:
    page.fill("#search", text)
    page.press("#search", "Enter")
    expect(page.locator("#gallery-title")).to_have_text(f"Search: {text}" if text else "Photos")


def tab_from(page, start: str, target: str, presses: int) -> bool:
    """Tab from `start` until an element matching `target` has the focus; whether one did."""
    page.focus(start)
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.matches({target!r})"):
            return True
    return False


# -- a fresh appliance ----------------------------------------------------------------------------------------


def test_a_fresh_data_dir_says_what_to_do_on_every_view(open_page, client):
    watched = open_page(client)
    page = watched.page
    empty = page.locator("#gallery-empty")
    expect(empty).to_contain_text("Add a folder of photos")
    assert page.locator("#grid .tile").count() == 0
    assert_accessible(page, "empty timeline")
    shot(page, "empty")

    search(page, "cat")
    expect(empty).to_contain_text("No photos match “cat”")
    expect(page.locator("#search-meaning")).to_contain_text("nothing is called “cat”")
    assert_accessible(page, "empty search")

    view(page, "people")
    expect(page.locator("#people-empty")).to_be_visible()
    expect(page.locator("#people-empty")).to_contain_text("No people yet")
    assert_accessible(page, "empty people")

    view(page, "albums")
    expect(page.locator("#albums-empty")).to_contain_text("No albums yet")
    assert_accessible(page, "empty albums")

    view(page, "status")
    expect(page.locator("#status-summary")).to_have_text("Everything is working.")
    expect(page.locator("#status-facts")).to_contain_text("0 photos analysed")
    assert_accessible(page, "status")

    # the gallery's empty state leads to Add folder
    view(page, "gallery")
    page.click("#gallery-empty button[data-view=add]")
    expect(page.locator("#add-view")).to_be_visible()
    expect(page.locator("#folder-path")).to_be_focused()
    assert_accessible(page, "add folder")
    watched.assert_clean()


# -- thumbnails arriving while the page is open ----------------------------------------------------------------


def test_photos_being_analysed_show_a_placeholder_then_their_thumbnail(open_page, client, library):
    """The page opened during an ingest: tiles wait as placeholders and fill in; no broken image at the end."""
    make_images(library / "burst", 240, size=(480, 360), seed=13)
    response = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert response.status_code == 202
    watched = open_page(client)
    page = watched.page
    expect(page.locator("#grid .tile.pending").first).to_be_visible()
    expect(page.locator("#grid .tile.pending").first).to_contain_text("Being analysed")
    expect(page.locator("#gallery-summary")).to_contain_text("being analysed")
    client.wait_for_job(response.json()["job_id"])

    expect(page.locator("#gallery-summary")).to_have_text("240 photos", timeout=15_000)
    expect(page.locator("#grid .tile.pending")).to_have_count(0)
    thumbnails_loaded(page)
    for _ in range(4):  # down to the end of the list: every tile drawn there is a thumbnail too
        page.mouse.wheel(0, 3000)
        page.wait_for_timeout(200)
        thumbnails_loaded(page)
        assert page.locator("#grid .tile.pending, #grid .tile.failed, #grid .tile.loading").count() == 0
    assert page.locator("#grid img").count() > 20
    watched.assert_clean()


# -- the whole page on the test photos --------------------------------------------------------------------------


def test_timeline_search_viewer_and_albums(open_page, client, library):
    paths = make_dated_library(library)
    watched = open_page(client)
    page = watched.page

    # Add the folder through the page and watch the job reach 100%; a mistake first, shown by the form.
    view(page, "add")
    page.fill("#folder-path", "/etc")
    page.click("#folder-form button")
    expect(page.locator("#folder-error")).to_contain_text("outside the library folders")
    page.fill("#folder-path", str(library))
    page.click("#folder-form button")
    expect(page.locator("#folder-error")).to_be_hidden()  # cleared by the next action
    expect(page.locator("#job-text")).to_contain_text("15 of 15 (100%)", timeout=120_000)
    shot(page, "add-folder")

    # The timeline: months newest first, the EXIF date before the file's.
    view(page, "gallery")
    expect(page.locator("#gallery-summary")).to_have_text("15 photos")
    months = page.locator("#grid .month h3")
    expect(months.first).to_contain_text("May 2023")
    headings = [months.nth(i).inner_text().split(" ")[0:2] for i in range(months.count())]
    assert headings[:3] == [["May", "2023"], ["April", "2023"], ["December", "2022"]]
    thumbnails_loaded(page)
    assert_accessible(page, "timeline")
    shot(page, "timeline")

    # The year scrubber.
    expect(page.locator("#years button")).to_have_text(["2023", "2022", "2021", "2020", "2019"])
    page.click("#years button[data-year='2019']")
    expect(page.locator("#grid .month[data-month='2019-06'] h3")).to_be_in_viewport()
    expect(page.locator("#years button[data-year='2019']")).to_have_attribute("aria-current", "true")
    zidane = page.locator(f"#grid .tile[data-path='{paths['zidane.jpg']}']")
    expect(zidane).to_have_attribute("data-taken", "2019-06-01T14:30:00")  # its EXIF date, not its file's

    # Search: objects, dates, folder and file names, combined.
    search(page, "cat")
    expect(tiles(page)).to_have_count(3)
    assert shown_paths(page) == {str(paths[n]) for n in ("cat.png", "cat.bmp", "cat (copy).png")}
    expect(page.locator("#search-meaning")).to_contain_text("object cat")
    shot(page, "search-cat")
    search(page, "cats 2023")
    expect(tiles(page)).to_have_count(2)
    assert shown_paths(page) == {str(paths["cat.png"]), str(paths["cat.bmp"])}
    search(page, "beach")
    assert_shows(page, {paths[n] for n in ("amir_khan.png", "000000000009.jpg", "000000000030.jpg")})
    search(page, "2020-02")
    assert_shows(page, {paths["salman_khan.png"], paths["test_2_faces.png"]})
    search(page, "2019..2020 bird")
    assert_shows(page, {paths["bird.bmp"]})
    search(page, "zidane")
    assert_shows(page, {paths["zidane.jpg"]})
    search(page, "unicorn")
    expect(page.locator("#gallery-empty")).to_contain_text("No photos match “unicorn”")
    assert_accessible(page, "search without results")

    # People: name Aamir on his page, then "Aamir beach" is his photo at the beach, not the collage.
    view(page, "people")
    aamir = page.locator(f"#people .person[data-cover='{paths['amir_khan.png']}']")
    expect(aamir).to_contain_text("Unnamed2 photos")
    assert_accessible(page, "people")
    aamir.locator(".open").click()
    page.fill("#person-name", "Aamir Khan")
    page.click("#person-rename button")
    expect(page.locator("#person-title")).to_have_text("Aamir Khan")
    page.click("#person-photos")
    expect(page.locator("#gallery-title")).to_have_text("Aamir Khan")
    assert_shows(page, {paths["amir_khan.png"], paths["three_khans.png"]})
    search(page, "Aamir")
    assert_shows(page, {paths["amir_khan.png"], paths["three_khans.png"]})
    search(page, "Aamir beach")
    assert_shows(page, {paths["amir_khan.png"]})
    expect(page.locator("#search-meaning")).to_contain_text("person Aamir Khan")

    # The viewer: boxes, names, facts; arrows, a swipe, Escape.
    search(page, "")
    viewer = page.locator("#viewer")
    page.locator(f"#grid .tile[data-path='{paths['three_khans.png']}'] .open").click()
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text("three_khans.png")
    expect(page.locator("#viewer-boxes rect.face")).to_have_count(3)
    expect(page.locator("#viewer-boxes rect.object")).to_have_count(3)
    expect(page.locator("#viewer-labels .face")).to_contain_text(["Aamir Khan"])
    facts = page.locator("#viewer-facts")
    expect(facts).to_contain_text("25 December 2022")
    expect(facts).to_contain_text("Aamir Khan")
    expect(facts).to_contain_text("person")
    expect(facts).to_contain_text("In no album")
    page.wait_for_function("document.getElementById('viewer-photo').naturalWidth > 0")
    assert_accessible(page, "viewer")
    shot(page, "viewer")
    page.uncheck("#show-objects")
    expect(page.locator("#viewer-boxes rect.object").first).to_be_hidden()
    expect(page.locator("#viewer-boxes rect.face").first).to_be_visible()
    page.check("#show-objects")

    order = page.eval_on_selector_all("#grid .tile[data-path]", "ts => ts.map(t => t.dataset.path)")
    here = order.index(str(paths["three_khans.png"]))
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-title")).to_have_text(Path(order[here + 1]).name)
    expect(page.locator("#viewer-position")).to_have_text(f"{here + 2} of 15")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-title")).to_have_text(Path(order[here - 1]).name)
    swipe(page, "#viewer-stage", -200)  # finger to the left: the next photo
    expect(page.locator("#viewer-title")).to_have_text("three_khans.png")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page.locator(f"#grid .tile[data-path='{paths['three_khans.png']}'] .open")).to_be_focused()

    # The keyboard alone: Tab from the search box to the first photo, Enter opens it, Escape closes.
    assert tab_from(page, "#search", "#grid .tile .open", 20), "a photo is reached by Tab"
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none", "the focused photo shows its focus"
    page.keyboard.press("Enter")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-position")).to_have_text("1 of 15")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    # Albums: tick two photos, add them to a new album (confirmed), find them there after a reload.
    page.click("#years button[data-year='2019']")
    for name in ("bird.bmp", "zidane.jpg"):
        page.check(f"#grid .tile[data-path='{paths[name]}'] .pick")
    expect(page.locator("#selected-count")).to_have_text("2 photos selected.")
    page.fill("#album-target", "Trip")
    page.click("#add-selected")
    expect(page.locator("#gallery-notice")).to_have_text("Created the album “Trip”. Added 2 photos to “Trip”.")
    expect(page.locator("#album-add")).to_be_hidden()
    page.check(f"#grid .tile[data-path='{paths['bird.bmp']}'] .pick")
    page.fill("#album-target", "Trip")
    page.click("#add-selected")
    expect(page.locator("#gallery-notice")).to_have_text("Added 0 photos to “Trip” (1 was in it already).")
    page.reload()
    view(page, "albums")
    card = page.locator(".album[data-album=Trip]")
    expect(card.locator(".count")).to_have_text("2 photos")
    card.locator("button", has_text="Edit description").click()
    card.locator("form.edit input").fill("Two photos")
    card.locator("form.edit button", has_text="Save").click()
    card = page.locator(".album[data-album=Trip]")
    expect(card.locator(".notice")).to_have_text("Description saved.")
    expect(card.locator(".description")).to_have_text("Two photos")
    page.fill("#album-name", "Trip")
    page.click("#album-form button")
    expect(page.locator("#album-form-error")).to_contain_text("already exists")
    assert_accessible(page, "albums")
    shot(page, "albums")
    card.locator("button", has_text="Open").click()
    expect(page.locator("#gallery-title")).to_have_text("Album “Trip”")
    assert_shows(page, {paths["bird.bmp"], paths["zidane.jpg"]})
    search(page, "trip")  # an album's name is a search word too
    assert_shows(page, {paths["bird.bmp"], paths["zidane.jpg"]})
    page.locator(f"#grid .tile[data-path='{paths['bird.bmp']}'] .open").click()
    expect(page.locator("#viewer-facts")).to_contain_text("Trip")
    page.keyboard.press("Escape")

    # The same page on a phone: no view scrolls sideways.
    page.set_viewport_size(PHONE)
    search(page, "")
    thumbnails_loaded(page)
    assert_no_sideways_scroll(page, "phone timeline")
    assert_accessible(page, "phone timeline")
    shot(page, "phone-timeline")
    page.locator(f"#grid .tile[data-path='{paths['three_khans.png']}'] .open").click()
    page.wait_for_function("document.getElementById('viewer-photo').naturalWidth > 0")
    expect(page.locator("#viewer-facts")).to_contain_text("Aamir Khan")
    assert_no_sideways_scroll(page, "phone viewer")
    shot(page, "phone-viewer")
    page.keyboard.press("Escape")
    for name in ("people", "albums", "add", "status"):
        view(page, name)
        expect(page.locator(f"#{name}-view")).to_be_visible()
        assert_no_sideways_scroll(page, f"phone {name}")
    watched.assert_clean("403 /images/add-folder", "409 /albums/create-album")


def assert_shows(page, expected: set[Path]) -> None:
    expect(tiles(page)).to_have_count(len(expected))
    assert shown_paths(page) == {str(path) for path in expected}


def swipe(page, selector: str, dx: int) -> None:
    box = page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


# -- people -------------------------------------------------------------------------------------------------------


def person_of(client, path: Path) -> int | None:
    (face,) = client.get("/tag/faces", params={"path": str(path)}).json()["faces"]
    return face["person_id"]


def face_crops_loaded(page, within: str) -> None:
    """Every image in `within` is a face crop (160 x 160) that has arrived."""
    page.wait_for_function(
        """within => {
            const images = [...document.querySelectorAll(`${within} img`)];
            return images.length > 0
                && images.every(i => i.src.includes('/tag/faces/') && i.complete && i.naturalWidth === 160);
        }""",
        arg=within,
    )


def faces_shown(page) -> set[str]:
    return {Path(path).name for path in page.eval_on_selector_all("#faces li", "ls => ls.map(l => l.dataset.path)")}


def test_people_are_faces_to_name_merge_take_out_move_and_hide(open_page, client):
    """The LFW faces (four people): People tiles are face crops; on a person's page a rename, a merge through
    the picker, "Not Abdullah" (the face goes to "Not sorted yet"), a move back, a face's name in the viewer
    leading to its person, hiding and showing again; then on a phone."""
    client.ingest(FACES)
    aaron, abdullah, aicha, frank = (
        person_of(client, FACES / name)
        for name in ("Aaron_Peirsol_0001.jpg", "Abdullah_0002.jpg", "Aicha_El_Ouafi_0001.jpg", "Frank_Solich_0001.jpg")
    )
    client.put(f"/tag/people/{frank}", json={"name": "Frank Solich"})
    watched = open_page(client)
    page = watched.page

    # People: four tiles, each a crop of a face, with a name (or "Unnamed") and a count; nothing unsorted
    view(page, "people")
    people = page.locator("#people li.person")
    expect(people).to_have_count(4)
    face_crops_loaded(page, "#people")
    expect(page.locator("#people-summary")).to_have_text("4 people")
    expect(page.locator("#people li.unsorted")).to_have_count(0)
    expect(page.locator("#show-hidden-label")).to_be_hidden()  # nobody is hidden
    expect(page.locator(f"#people li[data-person='{frank}']")).to_contain_text("Frank Solich3 photos")
    tile = page.locator(f"#people li[data-person='{abdullah}']")
    expect(tile).to_contain_text("Unnamed3 photos")

    # A person's page: their faces as crops, asked for a page at a time; a name
    tile.locator(".open").click()
    title = page.locator("#person-title")
    expect(title).to_have_text("Unnamed")
    expect(title).to_be_focused()
    expect(page.locator("nav button[data-view=people]")).to_have_attribute("aria-current", "page")
    faces = page.locator("#faces li.face")
    expect(faces).to_have_count(3)
    face_crops_loaded(page, "#faces")
    assert faces_shown(page) == {"Abdullah_0002.jpg", "Abdullah_0003.jpg", "Abdullah_0004.jpg"}
    assert any(f"/tag/people/{abdullah}/faces?offset=0&limit=61" in url for url in watched.requested)
    expect(page.locator("#faces-more")).to_be_hidden()
    page.fill("#person-name", "Abdullah")
    page.click("#person-rename button")
    expect(page.locator("#person-notice")).to_have_text("Named Abdullah.")
    expect(title).to_have_text("Abdullah")
    expect(page.locator("#person-summary")).to_have_text("3 photos")
    expect(faces.first.get_by_role("button", name="Not Abdullah")).to_be_visible()

    # Merge Aaron into Abdullah: the picker shows the others by their faces; nothing ticked is an error there
    page.click("#person-merge")
    picker = page.locator("#picker")
    expect(picker).to_be_visible()
    expect(page.locator("#picker-title")).to_have_text("Merge into Abdullah")
    expect(picker.locator("li")).to_have_count(3)
    face_crops_loaded(page, "#picker-people")
    page.click("#picker-submit")
    expect(page.locator("#picker-error")).to_have_text("Tick at least one person.")
    assert_accessible(page, "merge picker")
    page.check(f"#picker-people input[value='{aaron}']")
    page.click("#picker-submit")
    expect(picker).to_be_hidden()
    expect(page.locator("#person-notice")).to_have_text(
        "Merged an unnamed person (2 photos) into Abdullah: 5 photos now."
    )
    assert watched.questions[-1].startswith("Merge an unnamed person (2 photos) into Abdullah? Their faces become")
    expect(faces).to_have_count(5)
    face_crops_loaded(page, "#faces")
    clusters = client.get("/tag/clusters").json()["clusters"]
    assert str(aaron) not in clusters and len(clusters[str(abdullah)]) == 5
    assert_accessible(page, "person")
    shot(page, "person")

    # The keyboard reaches every face's buttons, and shows where it is
    assert tab_from(page, "#person-name", "#faces .actions button", 10), "a face's button by Tab"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    # Not Abdullah: Aaron's face leaves (the focus goes on to the next face) and waits under "Not sorted yet"
    aaron_face = page.locator(f"#faces li[data-path='{FACES / 'Aaron_Peirsol_0001.jpg'}']")
    aaron_face.get_by_role("button", name="Not Abdullah").click()
    expect(faces).to_have_count(4)
    expect(page.locator("#faces-notice")).to_have_text(
        "Took the face in Aaron_Peirsol_0001.jpg out of Abdullah: it is under “Not sorted yet” now."
    )
    assert page.evaluate("document.activeElement.matches('#faces li.face .open')")
    assert person_of(client, FACES / "Aaron_Peirsol_0001.jpg") is None
    page.click("#person-view .back")
    unsorted = page.locator("#people li.unsorted")
    expect(unsorted).to_contain_text("Not sorted yet1 photo")
    face_crops_loaded(page, "#people")
    shot(page, "people")
    unsorted.locator(".open").click()
    expect(title).to_have_text("Not sorted yet")
    expect(page.locator("#person-actions")).to_be_hidden()
    expect(page.locator("#person-about")).to_contain_text("Move one to the person it is")
    expect(faces).to_have_count(1)
    assert faces_shown(page) == {"Aaron_Peirsol_0001.jpg"}
    face_crops_loaded(page, "#faces")
    assert_accessible(page, "not sorted yet")

    # In the viewer that face is "Not sorted yet"; closing it comes back to the face
    faces.first.locator(".open").click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text("Aaron_Peirsol_0001.jpg")
    expect(page.locator("#viewer-labels .face")).to_have_text(["Not sorted yet"])
    page.keyboard.press("Escape")
    expect(faces.first.locator(".open")).to_be_focused()

    # Move it back to Abdullah, found by name in the picker
    faces.first.get_by_role("button", name="Move").click()
    expect(picker.locator("li")).to_have_count(3)
    page.fill("#picker-filter", "abd")
    expect(picker.locator("li:visible")).to_have_count(1)
    page.check(f"#picker-people input[value='{abdullah}']")
    page.click("#picker-submit")
    expect(page.locator("#faces-notice")).to_have_text("Moved the face in Aaron_Peirsol_0001.jpg to Abdullah.")
    expect(page.locator("#faces-empty")).to_contain_text("No faces are waiting")
    expect(faces).to_have_count(0)
    assert person_of(client, FACES / "Aaron_Peirsol_0001.jpg") == abdullah

    # From a photo, a face's name leads to its person's page
    search(page, "Frank_Solich_0001")
    page.locator("#grid .tile .open").first.click()
    label = page.locator("#viewer-labels .face")
    expect(label).to_have_text(["Frank Solich"])
    label.click()
    expect(page.locator("#viewer")).to_be_hidden()
    expect(title).to_have_text("Frank Solich")
    expect(faces).to_have_count(3)
    assert faces_shown(page) == {"Frank_Solich_0001.jpg", "Frank_Solich_0002.jpg", "Frank_Solich_0004.jpg"}

    # Hide him: gone from People and from /tag/clusters, until shown again
    page.click("#person-hide")
    expect(page.locator("#people-view")).to_be_visible()
    expect(page.locator("#people-notice")).to_contain_text("Frank Solich is hidden")
    expect(people).to_have_count(2)
    expect(page.locator(f"#people li[data-person='{frank}']")).to_have_count(0)
    expect(page.locator("#people-summary")).to_have_text("2 people · 1 hidden")
    assert str(frank) not in client.get("/tag/clusters").json()["clusters"]
    page.check("#show-hidden")
    hidden = page.locator(f"#people li[data-person='{frank}']")
    expect(hidden).to_contain_text("hidden")
    assert_accessible(page, "people, hidden shown")
    hidden.get_by_role("button", name="Show again: Frank Solich").click()
    expect(page.locator("#people-notice")).to_have_text("Frank Solich is shown again.")
    assert str(frank) in client.get("/tag/clusters").json()["clusters"]
    page.uncheck("#show-hidden")
    expect(people).to_have_count(3)

    # A phone: nothing scrolls sideways
    page.set_viewport_size(PHONE)
    face_crops_loaded(page, "#people")
    assert_no_sideways_scroll(page, "phone people")
    page.locator(f"#people li[data-person='{abdullah}'] .open").click()
    expect(faces).to_have_count(5)
    face_crops_loaded(page, "#faces")
    assert_no_sideways_scroll(page, "phone person")
    assert_accessible(page, "phone person")
    page.click("#person-merge")
    face_crops_loaded(page, "#picker-people")
    assert_no_sideways_scroll(page, "phone picker")
    shot(page, "phone-picker")
    page.keyboard.press("Escape")
    expect(picker).to_be_hidden()
    expect(page.locator("#person-merge")).to_be_focused()
    watched.assert_clean()


def test_status_says_what_is_wrong_in_words(open_page, client):
    """A degraded /health (here as the page would receive it) is shown as the problems it names."""
    watched = open_page(client)
    page = watched.page
    health = client.get("/health").json()
    health.update(
        status="degraded",
        problems=["library root /srv/photos shows no photos although the index has some (unplugged or unmounted?)"],
        disk={**health["disk"], "free_bytes": 0, "full": True},
        reanalysis={"job_id": "x", "total": 200, "done": 50, "failed": 1, "progress": 0.255},
    )
    page.route("**/health", lambda route: route.fulfill(json=health))
    view(page, "status")
    expect(page.locator("#status-summary")).to_have_text("Something needs attention:")
    expect(page.locator("#status-problems")).to_contain_text("library root /srv/photos shows no photos")
    facts = page.locator("#status-facts")
    expect(facts).to_contain_text("Full (0.0 GB free")
    expect(facts).to_contain_text("25% (50 of 200, 1 failed)")
    expect(facts).to_contain_text("2 analysers")
    assert_accessible(page, "degraded status")
    shot(page, "status")
    watched.assert_clean()


# -- the token -------------------------------------------------------------------------------------------------


def test_a_wrong_token_says_so_and_the_hint_names_the_settings(open_page, start_appliance):
    token = "a-token-for-the-web-page"
    client = start_appliance(api_token=token)
    client.ingest(PHOTOS)
    watched = open_page(client)
    page = watched.page
    expect(page.locator("#token-view")).to_be_visible()
    expect(page.locator("#token-where")).to_contain_text("given to the appliance in its settings (--api-token")
    assert_accessible(page, "token")
    shot(page, "token")
    page.fill("#token-input", "not-the-right-token")
    page.click("#token-form button")
    expect(page.locator("#token-error")).to_contain_text("not this appliance's token")
    page.fill("#token-input", token)
    page.click("#token-form button")
    expect(page.locator("#token-error")).to_be_hidden()
    expect(page.locator("#gallery-summary")).to_have_text("15 photos")
    # thumbnails load with the cookie the page set: <img> cannot send the header
    thumbnails_loaded(page)
    assert page.locator("#grid img").count() == 15
    watched.assert_clean("401 /images/timeline")


def test_the_token_hint_names_the_file_it_is_kept_in(open_page, start_appliance, tmp_path):
    token = "a-token-kept-in-the-data-dir"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api-token").write_text(token + "\n")
    client = start_appliance(api_token=token)
    anonymous = client.get("/health", headers={"Authorization": ""}).json()
    assert anonymous == {"status": "ok", "token_file": str(tmp_path / "data" / "api-token")}
    watched = open_page(client)
    expect(watched.page.locator("#token-where code")).to_have_text(str(tmp_path / "data" / "api-token"))
    watched.assert_clean()


# -- the routes the page uses ------------------------------------------------------------------------------


def test_routes_the_page_adds(start_appliance, library, tmp_path):
    token = "a-token-for-the-web-page"
    client = start_appliance(api_token=token)
    paths = make_dated_library(library)
    client.ingest(library)
    cat = str(paths["cat.png"])

    # the page itself needs no token; everything it shows does. A token given in the settings is in no file.
    anonymous = {"Authorization": ""}
    assert client.get("/", headers=anonymous).status_code == 200
    assert client.get("/static/grid.js", headers=anonymous).headers["Content-Type"].startswith("text/javascript")
    assert client.get("/health", headers=anonymous).json() == {"status": "ok"}
    for route in ("/images/thumbnail", "/images/details", "/images/timeline", "/images/search"):
        assert client.get(route, params={"path": cat}, headers=anonymous).status_code == 401
    assert client.get("/static/..%2Fapi%2Fweb.py").status_code == 400

    # the timeline: months newest first, and pages through them in the same order
    timeline = client.get("/images/timeline").json()
    assert timeline["total"] == 15 and timeline["pending"] == 0 and timeline["terms"] == []
    assert [m["month"] for m in timeline["months"]][:3] == ["2023-05", "2023-04", "2022-12"]
    assert sum(m["count"] for m in timeline["months"]) == 15
    first = client.get("/images/search", params={"limit": 4}).json()
    rest = client.get("/images/search", params={"offset": 4, "limit": 100}).json()
    taken = [photo["taken"] for photo in first["images"] + rest["images"]]
    assert first["total"] == 15 and len(taken) == 15 and taken == sorted(taken, reverse=True)
    assert first["images"][0] == {
        "path": str(paths["cat.bmp"]),
        "taken": "2023-05-20T12:00:00",
        "dated_by": "file",
        "ready": True,
    }

    # searches: what each word was taken to mean, and the photos matching all of them
    def found(q: str) -> set[str]:
        return {Path(photo["path"]).name for photo in client.get("/images/search", params={"q": q}).json()["images"]}

    assert found("cat") == {"cat.png", "cat.bmp", "cat (copy).png"}
    assert found("CATS 2023") == {"cat.png", "cat.bmp"}
    assert found("2022-12") == {"cat (copy).png", "three_khans.png"}
    assert found("2022-12-25") == {"three_khans.png"}
    assert found("2021-2022 person") == {"amir_khan.png", "three_khans.png", "grace_hopper.bmp"}
    assert found("2020..2021") == {
        "salman_khan.png",
        "test_2_faces.png",
        "000000000034.jpg",
        "amir_khan.png",
        "000000000009.jpg",
        "000000000030.jpg",
    }
    assert found("june 2019") == {"zidane.jpg"}  # its EXIF date, not its file's
    assert found('"2021 beach" bird') == set()
    assert found("garden") == {"cat.png", "cat.bmp", "000000000025.jpg", "zidane.jpg"}
    assert found("unicorn") == set()
    meanings = client.get("/images/timeline", params={"q": "cat 2023 unicorn"}).json()["terms"]
    assert meanings == [
        {"text": "cat", "means": "object cat; a folder or file name with “cat”"},
        {"text": "2023", "means": "taken in 2023"},
        {"text": "unicorn", "means": "nothing is called “unicorn”"},
    ]
    too_many = client.get("/images/search", params={"q": "a b c d e f g h i"})
    assert too_many.status_code == 400 and "at most 8 words" in too_many.json()["detail"]
    assert client.get("/images/search", params={"limit": 501}).status_code == 400

    # one photo's facts for the viewer
    details = client.get("/images/details", params={"path": str(paths["zidane.jpg"])}).json()
    assert details["taken"] == "2019-06-01T14:30:00" and details["dated_by"] == "exif"
    assert details["classes"] == ["person", "tie"] and details["albums"] == [] and len(details["people"]) == 2
    assert client.get("/images/details", params={"path": str(tmp_path / "x.jpg")}).status_code == 403
    assert client.get("/images/details", params={"path": str(library / "nope.png")}).status_code == 404

    # the routes are in the OpenAPI document
    document = client.get("/openapi.json").json()
    for route in ("/images/timeline", "/images/search", "/images/details"):
        assert document["paths"][route]["get"]["security"] == [{"bearer": []}]

    # a missing thumbnail (after a restore, say) is made again on demand; the cookie stands in on reads only
    for thumbnail in (client.data_dir / "thumbnails").rglob("*.jpg"):
        thumbnail.unlink()
    response = client.get("/images/thumbnail", params={"path": cat})
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"
    cookie = {"Authorization": "", "Cookie": f"appliance_token={token}"}
    assert client.get("/images/search", headers=cookie).status_code == 200
    assert client.post("/albums/create-album", json={"name": "x"}, headers=cookie).status_code == 401


def test_the_timeline_order_follows_writes(client, library):
    """The order and the searches kept in memory go with a write: a removed photo leaves them, a new one or a
    new album joins them."""
    paths = make_dated_library(library)
    client.ingest(library)
    assert client.get("/images/timeline").json()["total"] == 15
    assert client.get("/images/search", params={"q": "holiday"}).json()["total"] == 0
    client.post("/albums/create-album", json={"name": "Holiday"})
    client.post("/albums/add-multiple-to-album", json={"album_name": "Holiday", "paths": [str(paths["cat.png"])]})
    assert client.get("/images/search", params={"q": "holiday", "offset": 0}).json()["total"] == 1
    assert client.delete("/images/delete-image", json={"path": str(paths["bird.bmp"])}).status_code == 200
    timeline = client.get("/images/timeline").json()
    assert timeline["total"] == 14 and timeline["months"][-1] == {"month": "2019-05", "count": 1}
    extra = library / "new" / "late.png"
    extra.parent.mkdir()
    shutil.copyfile(PHOTOS / "bird.bmp", extra.with_suffix(".bmp"))
    os.utime(extra.with_suffix(".bmp"), (time.time(), time.time()))
    client.ingest(extra.parent)
    photos = client.get("/images/search", params={"limit": 1}).json()["images"]
    assert photos[0]["path"] == str(extra.with_suffix(".bmp"))
