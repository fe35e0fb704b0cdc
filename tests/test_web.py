"""The web page end to end, in headless Chromium (Debian's) against a real server on loopback."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from .conftest import PHOTOS, PROJECT

CHROMIUM = "/usr/bin/chromium"
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


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        yield browser
        browser.close()


def open_page(browser, client):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.on("dialog", lambda dialog: dialog.accept(page.dialog_answer) if dialog.type == "prompt" else dialog.accept())
    page.goto(client.url + "/")
    return page


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def tiles(page, selector: str = "#grid .tile"):
    return page.locator(selector)


def test_add_browse_filter_people_and_albums(browser, client):
    page = open_page(browser, client)

    # Add the test photos through the page and watch the job reach 100%.
    page.click("nav button[data-view=add]")
    page.fill("#folder-path", str(PHOTOS))
    page.click("#folder-form button")
    expect(page.locator("#job-text")).to_contain_text("15 of 15 (100%)", timeout=120_000)
    assert page.eval_on_selector("#job-progress", "p => p.value") == 1
    shot(page, "add-folder")

    # The gallery, then only the cats.
    page.click("nav button[data-view=gallery]")
    expect(tiles(page)).to_have_count(15)
    page.select_option("#class-filter", "cat")
    expect(tiles(page)).to_have_count(3)
    cats = {tiles(page).nth(i).get_attribute("data-path") for i in range(3)}
    assert cats == {str(PHOTOS / name) for name in ("cat.png", "cat (copy).png", "cat.bmp")}
    shot(page, "gallery-cats")

    # A photo with its objects and faces outlined.
    page.select_option("#class-filter", "")
    expect(tiles(page)).to_have_count(15)
    page.click(f"#grid .tile[data-path='{PHOTOS / 'three_khans.png'}'] img")
    expect(page.locator("#overlay rect.face")).to_have_count(3)
    expect(page.locator("#overlay rect.object")).to_have_count(3)
    page.wait_for_function("document.getElementById('photo').complete")
    shot(page, "photo")

    # People: the Khans, each with their own photo and the collage; name one.
    page.click("nav button[data-view=people]")
    aamir = page.locator(f".person[title='{PHOTOS / 'amir_khan.png'}']")
    salman = page.locator(f".person[title='{PHOTOS / 'salman_khan.png'}']")
    expect(aamir).to_contain_text("· 2")
    expect(salman).to_contain_text("· 2")
    page.dialog_answer = "Aamir Khan"
    page.locator("div:has(> .person[title$='amir_khan.png']) > button.rename").click()
    expect(aamir).to_contain_text("Aamir Khan · 2")
    shot(page, "people")
    aamir.locator("img").click()
    expect(tiles(page)).to_have_count(2)
    shown = {tiles(page).nth(i).get_attribute("data-path") for i in range(2)}
    assert shown == {str(PHOTOS / "amir_khan.png"), str(PHOTOS / "three_khans.png")}

    # Albums: create one, add two photos from the gallery, reload: they are still there.
    page.click("nav button[data-view=albums]")
    page.fill("#album-name", "Trip")
    page.fill("#album-description", "Two photos")
    page.click("#album-form button")
    expect(page.locator(".album[data-album=Trip]")).to_be_visible()
    page.click("nav button[data-view=gallery]")
    expect(tiles(page)).to_have_count(15)
    for name in ("bird.bmp", "zidane.jpg"):
        page.check(f"#grid .tile[data-path='{PHOTOS / name}'] input")
    page.select_option("#album-target", "Trip")
    page.click("#add-selected")
    expect(page.locator("#add-selected")).to_be_disabled()
    page.reload()
    page.click("nav button[data-view=albums]")
    album = page.locator(".album[data-album=Trip] .tile")
    expect(album).to_have_count(2)
    assert [album.nth(i).get_attribute("data-path") for i in range(2)] == [
        str(PHOTOS / "bird.bmp"),
        str(PHOTOS / "zidane.jpg"),
    ]
    shot(page, "albums")

    # The same page on a phone's screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("nav button[data-view=gallery]")
    expect(tiles(page)).to_have_count(15)
    page.wait_for_function("[...document.querySelectorAll('#grid img')].slice(0, 6).every(i => i.complete)")
    shot(page, "phone-gallery")


def test_a_token_screen_then_the_gallery(browser, start_appliance):
    token = "a-token-for-the-web-page"
    client = start_appliance(api_token=token)
    client.session.headers["Authorization"] = f"Bearer {token}"
    client.ingest(PHOTOS)
    page = open_page(browser, client)
    expect(page.locator("#token-view")).to_be_visible()
    shot(page, "token")
    page.fill("#token-input", token)
    page.click("#token-form button")
    expect(tiles(page)).to_have_count(15)
    # thumbnails load with the cookie the page set: <img> cannot send the header
    page.wait_for_function("[...document.querySelectorAll('#grid img')].slice(0, 4).every(i => i.naturalWidth > 0)")


def test_routes_the_page_adds(start_appliance, tmp_path):
    token = "a-token-for-the-web-page"
    client = start_appliance(api_token=token)
    client.session.headers["Authorization"] = f"Bearer {token}"
    client.ingest(PHOTOS)
    cat = str(PHOTOS / "cat.png")

    # the page itself needs no token; everything it shows does
    anonymous = {"Authorization": ""}
    assert client.get("/", headers=anonymous).status_code == 200
    assert client.get("/static/app.js", headers=anonymous).status_code == 200
    assert client.get("/images/thumbnail", params={"path": cat}, headers=anonymous).status_code == 401
    assert client.get("/static/..%2Fapi%2Fweb.py").status_code == 400

    # a missing thumbnail (after a restore, say) is made again on demand
    for thumbnail in (client.data_dir / "thumbnails").rglob("*.jpg"):
        thumbnail.unlink()
    response = client.get("/images/thumbnail", params={"path": cat})
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    assert client.get("/images/thumbnail", params={"path": str(tmp_path / "x.jpg")}).status_code == 403
    assert client.get("/images/original", params={"path": str(PHOTOS / "nope.png")}).status_code == 404
    assert client.get("/images/original", params={"path": cat}).content == (PHOTOS / "cat.png").read_bytes()

    # the cookie stands in for the header on reads only
    cookie = {"Authorization": "", "Cookie": f"appliance_token={token}"}
    assert client.get("/images/thumbnail", params={"path": cat}, headers=cookie).status_code == 200
    assert client.post("/albums/create-album", json={"name": "x"}, headers=cookie).status_code == 401

    faces = client.get("/tag/faces", params={"path": str(PHOTOS / "three_khans.png")}).json()["faces"]
    assert len(faces) == 3 and [f["box"][0] for f in faces] == sorted(f["box"][0] for f in faces)
    person = faces[1]["person_id"]
    assert client.put(f"/tag/people/{person}", json={"name": " Salman Khan "}).status_code == 200
    people = {p["person_id"]: p for p in client.get("/tag/people").json()["people"]}
    assert people[person]["name"] == "Salman Khan" and people[person]["photos"] == 2
    assert client.put("/tag/people/99999", json={"name": "Nobody"}).status_code == 404
