// Albums: create, open, describe and delete; each change is confirmed next to the album it changed.

import { $, act, api, imageUrl, plural, say } from "./api.js";

const COVERS = 4; // thumbnails per album card: a long list of albums stays light

export function setupAlbums(openAlbum) {
  $("album-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("album-form-error"), async () => {
      const name = $("album-name").value.trim();
      await api("POST", "/albums/create-album", { name, description: $("album-description").value || undefined });
      $("album-form").reset();
      await loadAlbums(openAlbum);
      say($("album-form-notice"), `Created the album “${name}”. Tick photos in Photos to add them to it.`);
    });
  });
}

export async function loadAlbums(openAlbum) {
  const albums = (await api("GET", "/albums/view-all")).albums;
  $("albums-empty").hidden = albums.length > 0;
  $("albums").replaceChildren(...albums.map((album) => albumCard(album, openAlbum)));
}

function albumCard(album, openAlbum) {
  const name = album.album_name;
  const card = document.createElement("li");
  card.className = "album";
  card.dataset.album = name;
  const heading = Object.assign(document.createElement("h3"), { textContent: name });
  const count = Object.assign(document.createElement("p"), { className: "count", textContent: plural(album.image_paths.length, "photo") });
  const description = Object.assign(document.createElement("p"), { className: "description", textContent: album.description || "" });
  const covers = Object.assign(document.createElement("button"), { type: "button", className: "covers" });
  covers.setAttribute("aria-label", `Open the album ${name}`);
  covers.append(...album.image_paths.slice(0, COVERS).map((path) =>
    Object.assign(document.createElement("img"), { alt: "", src: imageUrl("thumbnail", path), loading: "lazy" })));
  if (!album.image_paths.length) covers.append(Object.assign(document.createElement("span"), { textContent: "Empty" }));
  covers.addEventListener("click", () => openAlbum(name));
  const notice = Object.assign(document.createElement("p"), { className: "notice", hidden: true });
  notice.setAttribute("role", "status");
  const error = Object.assign(document.createElement("p"), { className: "error", hidden: true });
  error.setAttribute("role", "alert");
  const form = descriptionForm(album, error, openAlbum);
  const buttons = document.createElement("div");
  buttons.className = "row";
  buttons.append(
    button("Open", () => openAlbum(name)),
    button("Edit description", () => { form.hidden = false; form.querySelector("input").focus(); }),
    button("Delete album", () => deleteAlbum(name, error, openAlbum)),
  );
  card.append(heading, count, description, covers, buttons, form, notice, error);
  return card;
}

function button(text, onClick) {
  const element = Object.assign(document.createElement("button"), { type: "button", textContent: text });
  element.addEventListener("click", onClick);
  return element;
}

function descriptionForm(album, error, openAlbum) {
  const name = album.album_name;
  const form = Object.assign(document.createElement("form"), { className: "row edit", hidden: true });
  const label = Object.assign(document.createElement("label"), { textContent: `Description of ${name} ` });
  const input = Object.assign(document.createElement("input"), { value: album.description || "", maxLength: 1000 });
  label.append(input);
  const cancel = button("Cancel", () => { form.hidden = true; });
  form.append(label, Object.assign(document.createElement("button"), { textContent: "Save" }), cancel);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(error, async () => {
      await api("PUT", "/albums/edit-album-description", { name, description: input.value });
      await loadAlbums(openAlbum);
      const card = document.querySelector(`.album[data-album="${CSS.escape(name)}"]`);
      say(card.querySelector(".notice"), "Description saved.");
    });
  });
  return form;
}

async function deleteAlbum(name, error, openAlbum) {
  if (!confirm(`Delete the album “${name}”? Its photos stay in the library.`)) return;
  await act(error, async () => {
    await api("DELETE", "/albums/delete-album", { name });
    await loadAlbums(openAlbum);
    say($("album-form-notice"), `Deleted the album “${name}”; its photos stay in the library.`);
  });
}
