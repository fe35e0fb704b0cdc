// People: one tile per person (face cluster) with a cover photo; open one's photos, or rename them.
// (Kept as it was; the people views are being reworked separately.)

import { $, act, api, imageUrl } from "./api.js";

export async function loadPeople(openPerson) {
  const people = (await api("GET", "/tag/people")).people;
  $("people-empty").hidden = people.length > 0;
  $("people").replaceChildren(...people.map((person) => personTile(person, openPerson)));
}

function personTile(person, openPerson) {
  const name = person.name || `Person ${person.person_id}`;
  const tile = document.createElement("div");
  tile.className = "tile person";
  tile.dataset.person = person.person_id;
  tile.title = person.cover;
  const open = Object.assign(document.createElement("button"), { type: "button", className: "open" });
  open.append(Object.assign(document.createElement("img"), { alt: `${name}: open their photos`, src: imageUrl("thumbnail", person.cover) }));
  open.addEventListener("click", () => openPerson(person.person_id, name));
  const caption = Object.assign(document.createElement("span"), { className: "caption", textContent: `${name} · ${person.photos}` });
  tile.append(open, caption);
  const rename = Object.assign(document.createElement("button"), { type: "button", textContent: "Rename", className: "rename" });
  rename.setAttribute("aria-label", `Rename ${name}`);
  rename.addEventListener("click", () => act($("people-error"), async () => {
    const newName = prompt("Name", person.name || "");
    if (newName === null) return;
    await api("PUT", `/tag/people/${person.person_id}`, { name: newName });
    await loadPeople(openPerson);
  }));
  const wrapper = document.createElement("div");
  wrapper.append(tile, rename);
  return wrapper;
}
