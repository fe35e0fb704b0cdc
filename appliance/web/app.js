// The appliance's web page: plain JavaScript modules over the documented routes, no build step.
// This module owns the views, the photo list on show (timeline, search, a person's photos, an album) and the
// token.

import { $, act, api, clearMessages, plural, query, report, say, saveToken, token, whenTokenNeeded } from "./api.js";
import { loadAlbums, setupAlbums } from "./albums.js";
import { setupFolders } from "./folders.js";
import { CHUNK, PhotoGrid } from "./grid.js";
import { loadPeople, setupPeople } from "./people.js";
import { openPerson, setupPerson } from "./person.js";
import { setupPicker } from "./picker.js";
import { loadStatus } from "./status.js";
import { Viewer } from "./viewer.js";

const BUSY_POLL_MS = 2000; // while photos are being analysed, so they fill in soon after they land
const IDLE_POLL_MS = 20000; // otherwise, to pick up what the appliance found by itself

const state = {
  view: "gallery",
  mode: { kind: "timeline", q: "" }, // or { kind: "search", q }, { kind: "person", person, name }, { kind: "album", album }
  shape: "", // the months of the list on show, to notice when analysis changed it
  busy: false,
  pollFailed: false,
  selected: new Set(),
  albums: [],
};

const grid = new PhotoGrid($("grid"), {
  onOpen: (index) => viewer.open({ count: grid.total, itemAt: (i) => grid.item(i) }, index),
  isSelected: (path) => state.selected.has(path),
  onSelect: (path, on) => {
    clearMessages(); // ticking a photo is the next action: the last confirmation goes
    on ? state.selected.add(path) : state.selected.delete(path);
    showSelection();
    if (state.selected.size === 1) act($("album-add-error"), loadAlbumNames); // for the album picker
  },
  onError: (error) => report($("gallery-error"), error),
});
const viewer = new Viewer({
  onClose: (index) => grid.reveal(index),
  onPerson: (person) => { $("search").value = ""; act($("person-error"), () => openPerson(person)); },
});

// -- views ------------------------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  document.body.classList.toggle("locked", view === "token"); // nothing else works before the token
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `${view}-view`;
  const tab = view === "person" ? "people" : view; // a person's page is part of People
  for (const button of document.querySelectorAll("nav button")) {
    if (button.dataset.view === tab) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
}

function go(view) {
  clearMessages();
  $("search").value = ""; // another view: the last search is over
  if (view === "gallery") openGallery({ kind: "timeline", q: "" });
  if (view === "people") { show("people"); act($("people-error"), loadPeople); }
  if (view === "albums") { show("albums"); act($("album-form-error"), () => loadAlbums(openAlbum)); }
  if (view === "add") { show("add"); $("folder-path").focus(); }
  if (view === "status") { show("status"); act($("status-error"), loadStatus); }
}

// -- the photo list ---------------------------------------------------------------------------------------

// What the grid pages through: the timeline or a search (by month, from the server), a person or an album.
async function sourceFor(mode) {
  if (mode.kind === "person") {
    const paths = (await api("GET", "/tag/clusters")).clusters[mode.person] || [];
    return listSource(paths, `Photos of ${mode.name}`);
  }
  if (mode.kind === "album") {
    const album = await api("GET", `/albums/view-album?${query({ album_name: mode.album })}`);
    return listSource(album.photos, album.description || `Album “${mode.album}”`);
  }
  const fetch = async (offset, limit) => (await api("GET", `/images/search?${query({ q: mode.q, offset, limit })}`)).images;
  const first = fetch(0, CHUNK); // asked at once, beside the months: the first screen needs both
  first.catch(() => {}); // a failure is reported where the grid waits for it
  const summary = await api("GET", `/images/timeline?${query({ q: mode.q })}`);
  return { summary, groups: summary.months, fetch, first };
}

function listSource(paths, label) {
  const groups = paths.length ? [{ month: null, label, count: paths.length }] : [];
  const fetch = async (offset, limit) => paths.slice(offset, offset + limit).map((path) => ({ path, taken: null, ready: true }));
  return { summary: { total: paths.length, pending: 0, terms: [] }, groups, fetch };
}

async function openGallery(mode) {
  state.mode = mode;
  show("gallery");
  await act($("gallery-error"), async () => {
    const source = await sourceFor(mode);
    scrollTo(0, 0);
    showSource(source, false);
  });
}

function showSource(source, keepPlace) {
  state.shape = JSON.stringify(source.groups);
  state.busy = source.summary.pending > 0;
  grid.show(source, { keepPlace });
  describe(source.summary);
  drawYears();
}

// Photos analysed since: the same list again, in place.
async function refreshGallery() {
  const mode = state.mode;
  if (mode.kind !== "timeline" && mode.kind !== "search") return;
  const source = await sourceFor(mode);
  if (mode !== state.mode || JSON.stringify(source.groups) === state.shape) return;
  showSource(source, true);
}

function describe(summary) {
  const { kind, q } = state.mode;
  const titles = { timeline: "Photos", search: `Search: ${q}`, person: state.mode.name, album: `Album “${state.mode.album}”` };
  $("gallery-title").textContent = titles[kind];
  const analysing = summary.pending ? ` · ${plural(summary.pending, "photo")} being analysed` : "";
  $("gallery-summary").textContent = `${plural(summary.total, "photo")}${analysing}`;
  $("show-all").hidden = kind === "timeline";
  $("remove-selected").hidden = kind !== "album";
  const meaning = summary.terms.map((term) => `“${term.text}”: ${term.means}`).join(" · ");
  $("search-meaning").textContent = meaning;
  $("search-meaning").hidden = !meaning;
  describeEmpty(summary.total === 0);
}

function describeEmpty(empty) {
  const box = $("gallery-empty");
  box.hidden = !empty;
  if (!empty) return;
  const { kind, q } = state.mode;
  const add = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Add a folder" });
  add.dataset.view = "add";
  const words = {
    timeline: [add, " of photos: they appear here as they are analysed, newest first, grouped by month."],
    search: [`No photos match “${q}”. Try an object (cat, car), a person's name, an album, a folder or file name,`
      + " or a date (2023, 2023-07, 2019..2021); words combine, as in “cat 2023”."],
    person: ["This person is on no photo any more."],
    album: ["This album is empty. Tick photos in Photos and add them to it."],
  }[kind];
  const text = document.createElement("p");
  text.append(...words);
  box.replaceChildren(text);
}

function drawYears() {
  const years = grid.years();
  $("years").hidden = years.length < 2;
  $("years").replaceChildren(...years.map((year) => {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: year });
    button.dataset.year = year;
    button.addEventListener("click", () => grid.scrollToYear(year));
    return button;
  }));
  markYear();
}

function markYear() {
  const year = grid.currentYear();
  for (const button of $("years").children) {
    if (button.dataset.year === year) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function openPhotosOf(person, name) { openGallery({ kind: "person", person: String(person), name }); }
function openAlbum(album) { openGallery({ kind: "album", album }); }

// -- selecting photos and putting them in albums ------------------------------------------------------------

// Ticked photos bring up a bar at the bottom of the screen, wherever the list is scrolled to.
function showSelection() {
  const count = state.selected.size;
  $("selected-count").textContent = `${plural(count, "photo")} selected.`;
  $("album-add").hidden = count === 0;
  $("select-hint").hidden = count > 0;
  document.body.classList.toggle("selecting", count > 0);
}

function clearSelection() {
  state.selected.clear();
  for (const box of document.querySelectorAll("#grid .pick")) box.checked = false;
  showSelection();
}

async function loadAlbumNames() {
  state.albums = (await api("GET", "/albums/view-all")).albums.map((album) => album.album_name);
  $("album-names").replaceChildren(...state.albums.map((name) => new Option(name)));
}

async function addSelected(event) {
  event.preventDefault();
  await act($("album-add-error"), async () => {
    const name = $("album-target").value.trim();
    const created = !state.albums.includes(name);
    if (created) await api("POST", "/albums/create-album", { name });
    const result = await api("POST", "/albums/add-multiple-to-album", { album_name: name, paths: [...state.selected] });
    const already = state.selected.size - result.added;
    clearSelection();
    $("album-target").value = "";
    await loadAlbumNames();
    say($("gallery-notice"), `${created ? `Created the album “${name}”. ` : ""}Added ${plural(result.added, "photo")} to “${name}”`
      + (already > 0 ? ` (${already} ${already === 1 ? "was" : "were"} in it already).` : "."));
  });
}

async function removeSelected() {
  const album = state.mode.album;
  const paths = [...state.selected];
  if (!confirm(`Remove ${plural(paths.length, "photo")} from “${album}”? The photos stay in the library.`)) return;
  await act($("album-add-error"), async () => {
    for (const path of paths) await api("DELETE", "/albums/remove-from-album", { album_name: album, path });
    clearSelection();
    await openGallery(state.mode);
    say($("gallery-notice"), `Removed ${plural(paths.length, "photo")} from “${album}”.`);
  });
}

// -- the token ----------------------------------------------------------------------------------------------

// Says where this appliance's token is: /health tells anyone the file it is kept in, if it is.
async function showToken(detail) {
  show("token");
  const health = await api("GET", "/health").catch(() => ({}));
  const where = $("token-where");
  if (health.token_file) {
    const file = Object.assign(document.createElement("code"), { textContent: health.token_file });
    where.replaceChildren("It is in the file ", file, " on the appliance; only the appliance's user can read it"
      + ` (for example: sudo cat ${health.token_file}).`);
  } else {
    where.textContent = "It was given to the appliance in its settings (--api-token, APPLIANCE_API_TOKEN, or api_token"
      + " in its config file): ask whoever set it up.";
  }
  if (token() && detail) say($("token-error"), detail); // a stored token was refused: it is the wrong one
  $("token-input").focus();
}

async function unlock(event) {
  event.preventDefault();
  saveToken($("token-input").value.trim());
  await act($("token-error"), async () => {
    await api("GET", "/images/timeline"); // a 401 here comes back to the token screen with the reason
    $("token-form").reset();
    openGallery({ kind: "timeline", q: "" });
  });
}

// -- background refresh -----------------------------------------------------------------------------------

async function poll() {
  try {
    if (state.view === "gallery" && !document.hidden) await refreshGallery();
    if (state.view === "status" && !document.hidden) await loadStatus();
    if (state.pollFailed) { $("gallery-error").hidden = true; state.pollFailed = false; }
  } catch (error) {
    if (error.status !== 401) { report($("gallery-error"), error); state.pollFailed = true; }
  } finally {
    setTimeout(poll, state.busy || state.view === "status" ? BUSY_POLL_MS : IDLE_POLL_MS);
  }
}

// -- wiring -------------------------------------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const target = event.target.closest("button[data-view]");
  if (target && !target.closest("#viewer")) go(target.dataset.view);
});
addEventListener("scroll", () => requestAnimationFrame(markYear), { passive: true });
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("search").value.trim();
  openGallery(q ? { kind: "search", q } : { kind: "timeline", q: "" });
});
$("show-all").addEventListener("click", () => { $("search").value = ""; openGallery({ kind: "timeline", q: "" }); });
$("album-add").addEventListener("submit", addSelected);
$("remove-selected").addEventListener("click", removeSelected);
$("clear-selection").addEventListener("click", () => { clearMessages(); clearSelection(); });
$("token-form").addEventListener("submit", unlock);
whenTokenNeeded(showToken);
setupPeople((person) => act($("person-error"), () => openPerson(person)));
setupPerson({ show, openPhotos: openPhotosOf, openViewer: (sequence, index) => viewer.open(sequence, index) });
setupPicker();
setupAlbums(openAlbum);
setupFolders((busy) => { state.busy = busy; });

async function start() {
  // With a token stored, a wrong one is told by the first answer. Without, /health says whether one is needed:
  // it answers in full only to those who need no token.
  const health = token() ? null : await api("GET", "/health").catch(() => null);
  if (health && !health.version) showToken();
  else await openGallery({ kind: "timeline", q: "" });
  setTimeout(poll, BUSY_POLL_MS);
}

start();
