// The appliance's web page: plain JavaScript over the documented routes, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 60;
const state = { offset: 0, paths: [], selected: new Set(), albums: [] };

function token() { return localStorage.getItem("appliance-token"); }

function saveToken(value) {
  localStorage.setItem("appliance-token", value);
  // Images are fetched by <img> tags, which cannot send a header: the server accepts this cookie on GETs.
  document.cookie = `appliance_token=${encodeURIComponent(value)}; path=/; SameSite=Strict`;
}

async function api(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) { show("token"); throw new Error(data.detail); }
  if (!response.ok) { fail(data.detail || response.statusText); throw new Error(data.detail); }
  $("error").hidden = true;
  return data;
}

function fail(message) { $("error").textContent = message; $("error").hidden = false; }

const image = (kind, path) => `/images/${kind}?path=${encodeURIComponent(path)}`;
const basename = (path) => path.split("/").pop();

function show(view) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `${view}-view`;
  for (const button of document.querySelectorAll("nav button")) button.classList.toggle("active", button.dataset.view === view);
}

function tile(path, { selectable = false, caption = basename(path), onOpen = () => openPhoto(path) } = {}) {
  const div = document.createElement("div");
  div.className = "tile";
  div.dataset.path = path;
  div.title = path;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = basename(path);
  img.src = image("thumbnail", path);
  img.addEventListener("click", onOpen);
  div.append(img);
  if (selectable) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.selected.has(path);
    box.addEventListener("change", () => {
      box.checked ? state.selected.add(path) : state.selected.delete(path);
      $("add-selected").disabled = state.selected.size === 0;
    });
    div.append(box);
  }
  if (caption) {
    const label = document.createElement("span");
    label.className = "caption";
    label.textContent = caption;
    div.append(label);
  }
  return div;
}

// Gallery: every image, or those with one object class, or one person's.
async function loadGallery({ append = false, title = "" } = {}) {
  show("gallery");
  const cls = $("class-filter").value;
  let paths;
  if (state.person !== undefined) {
    paths = (await api("GET", "/tag/clusters")).clusters[state.person] || [];
  } else if (cls) {
    const data = (await api("GET", "/images/all-image-objects")).data;
    paths = Object.keys(data).filter((p) => data[p].includes(cls)).sort();
  } else {
    const page = await api("GET", `/images/all-images?offset=${state.offset}&limit=${PAGE}`);
    paths = page.images;
    $("more").hidden = state.offset + PAGE >= page.total;
  }
  if (state.person !== undefined || cls) $("more").hidden = true;
  if (!append) $("grid").replaceChildren();
  for (const path of paths) $("grid").append(tile(path, { selectable: true }));
  $("gallery-title").textContent = title || (cls ? `${paths.length} with ${cls}` : "");
  await loadClassOptions();
  await loadAlbumTargets();
}

async function loadClassOptions() {
  const data = (await api("GET", "/images/all-image-objects")).data;
  const classes = [...new Set(Object.values(data).flat())].sort();
  const select = $("class-filter");
  const current = select.value;
  select.replaceChildren(new Option("everything", ""), ...classes.map((c) => new Option(c, c)));
  select.value = classes.includes(current) ? current : "";
}

async function loadAlbumTargets() {
  state.albums = (await api("GET", "/albums/view-all")).albums;
  $("album-target").replaceChildren(...state.albums.map((a) => new Option(a.album_name, a.album_name)));
}

async function openPhoto(path) {
  show("photo");
  $("photo-title").textContent = path;
  $("photo").src = image("original", path);
  const [objects, faces] = await Promise.all([
    api("GET", `/images/class-ids?path=${encodeURIComponent(path)}`),
    api("GET", `/tag/faces?path=${encodeURIComponent(path)}`),
  ]);
  const svg = $("overlay");
  svg.replaceChildren();
  const rect = (box, kind, label) => {
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const [x1, y1, x2, y2] = box;
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1 }).forEach(([k, v]) => r.setAttribute(k, v));
    r.setAttribute("class", kind);
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = label;
    r.append(title);
    svg.append(r);
  };
  objects.objects.forEach((o) => rect(o.box, "object", `${o.label} ${o.score.toFixed(2)}`));
  faces.faces.forEach((f) => rect(f.box, "face", `person ${f.person_id}`));
  $("photo-facts").replaceChildren(
    ...[`Status: ${objects.status}`, `Objects: ${objects.classes.join(", ") || "none"}`, `Faces: ${faces.faces.length}`]
      .map((text) => Object.assign(document.createElement("li"), { textContent: text })),
  );
}

async function loadPeople() {
  show("people");
  const people = (await api("GET", "/tag/people")).people;
  $("people").replaceChildren(...people.map((person) => {
    const name = person.name || `Person ${person.person_id}`;
    const div = tile(person.cover, {
      caption: `${name} · ${person.photos}`,
      onOpen: () => { state.person = String(person.person_id); loadGallery({ title: name }); },
    });
    div.classList.add("person");
    div.dataset.person = person.person_id;
    const rename = Object.assign(document.createElement("button"), { textContent: "Rename", className: "rename" });
    rename.addEventListener("click", async () => {
      const newName = prompt("Name", person.name || "");
      if (newName === null) return;
      await api("PUT", `/tag/people/${person.person_id}`, { name: newName });
      loadPeople();
    });
    const wrapper = document.createElement("div");
    wrapper.append(div, rename);
    return wrapper;
  }));
}

async function loadAlbums() {
  show("albums");
  const albums = (await api("GET", "/albums/view-all")).albums;
  $("albums").replaceChildren(...albums.map((album) => {
    const card = document.createElement("div");
    card.className = "album";
    card.dataset.album = album.album_name;
    const heading = Object.assign(document.createElement("h3"), { textContent: album.album_name });
    const description = Object.assign(document.createElement("p"), { textContent: album.description || "" });
    const edit = Object.assign(document.createElement("button"), { textContent: "Edit description" });
    edit.addEventListener("click", async () => {
      const text = prompt("Description", album.description || "");
      if (text === null) return;
      await api("PUT", "/albums/edit-album-description", { name: album.album_name, description: text });
      loadAlbums();
    });
    const remove = Object.assign(document.createElement("button"), { textContent: "Delete album" });
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete the album ${album.album_name}? The photos stay.`)) return;
      await api("DELETE", "/albums/delete-album", { name: album.album_name });
      loadAlbums();
    });
    const grid = document.createElement("div");
    grid.className = "grid";
    for (const path of album.image_paths) {
      const photo = tile(path, { caption: "" });
      const out = Object.assign(document.createElement("button"), { textContent: "Remove", className: "remove" });
      out.addEventListener("click", async () => {
        await api("DELETE", "/albums/remove-from-album", { album_name: album.album_name, path });
        loadAlbums();
      });
      const wrapper = document.createElement("div");
      wrapper.append(photo, out);
      grid.append(wrapper);
    }
    card.append(heading, description, edit, remove, grid);
    return card;
  }));
}

async function addFolder(event) {
  event.preventDefault();
  const result = await api("POST", "/images/add-folder", { folder_path: $("folder-path").value });
  $("job").hidden = false;
  $("job-failures").replaceChildren();
  if (!result.job_id) { $("job-progress").value = 1; $("job-text").textContent = result.message; return; }
  for (;;) {
    const job = await api("GET", `/images/jobs/${result.job_id}`);
    $("job-progress").value = job.progress;
    $("job-text").textContent = `${job.done + job.failed} of ${job.total} (${Math.floor(job.progress * 100)}%)`;
    if (job.finished) {
      $("job-failures").replaceChildren(...job.failures.map((f) =>
        Object.assign(document.createElement("li"), { textContent: `${basename(f.path)}: ${f.error}` })));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

document.querySelectorAll("nav button").forEach((button) => button.addEventListener("click", () => {
  const view = button.dataset.view;
  if (view === "gallery") { state.person = undefined; state.offset = 0; loadGallery(); }
  if (view === "people") loadPeople();
  if (view === "albums") loadAlbums();
  if (view === "add") show("add");
}));
$("class-filter").addEventListener("change", () => { state.person = undefined; state.offset = 0; loadGallery(); });
$("more").addEventListener("click", () => { state.offset += PAGE; loadGallery({ append: true }); });
$("back").addEventListener("click", () => show("gallery"));
$("folder-form").addEventListener("submit", addFolder);
$("album-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await api("POST", "/albums/create-album", { name: $("album-name").value, description: $("album-description").value || undefined });
  $("album-form").reset();
  loadAlbums();
});
$("add-selected").addEventListener("click", async () => {
  const albumName = $("album-target").value;
  if (!albumName) { fail("Create an album first."); return; }
  await api("POST", "/albums/add-multiple-to-album", { album_name: albumName, paths: [...state.selected] });
  state.selected.clear();
  document.querySelectorAll("#grid input[type=checkbox]").forEach((box) => { box.checked = false; });
  $("add-selected").disabled = true;
});
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  saveToken($("token-input").value);
  loadGallery();
});

loadGallery().catch(() => {});
