// People: one tile per person, shown by a crop of their face, with the faces nobody is yet as one more
// entry; hidden people only when asked for, each with a way back. Also the face crop and the name that every
// people view (the person page, the picker) shows.

import { $, act, api, plural, say } from "./api.js";

export const UNSORTED = "Not sorted yet"; // the entry of the faces that belong to nobody (person_id null)

const state = { openPerson: () => {} };

export function setupPeople(openPerson) {
  state.openPerson = openPerson;
  $("show-hidden").addEventListener("change", () => act($("people-error"), loadPeople));
}

export const personName = (person) => (person.person_id === null ? UNSORTED : person.name || "Unnamed");

// Everyone, hidden or not, and the unsorted faces' entry (last, when there are any).
export async function everyone() {
  return (await api("GET", "/tag/people?include_hidden=true")).people;
}

// A face's square crop; one that cannot be shown (its photo gone from the disk) says so, never a broken image.
export function faceImage(faceId, alt) {
  const img = Object.assign(document.createElement("img"), { alt, loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => {
    const none = Object.assign(document.createElement("span"), { className: "placeholder", textContent: "No preview" });
    if (alt) none.setAttribute("aria-label", `${alt}: no preview`);
    img.replaceWith(none);
  }, { once: true });
  img.src = `/tag/faces/${faceId}/thumbnail`;
  return img;
}

export async function loadPeople() {
  const people = await everyone();
  const showHidden = $("show-hidden").checked;
  const named = people.filter((p) => p.person_id !== null);
  const hidden = named.filter((p) => p.hidden).length;
  const visible = named.length - hidden;
  const shown = people.filter((p) => showHidden || !p.hidden);
  $("people-summary").textContent = [
    visible ? `${visible.toLocaleString("en")} ${visible === 1 ? "person" : "people"}` : "",
    hidden ? `${hidden.toLocaleString("en")} hidden` : "",
  ].filter(Boolean).join(" · ");
  $("show-hidden-label").hidden = hidden === 0 && !showHidden;
  $("people-empty").hidden = named.length > 0;
  $("people-all-hidden").hidden = !(named.length > 0 && hidden === named.length && !showHidden);
  $("people").replaceChildren(...shown.map(tile));
}

function tile(person) {
  const item = document.createElement("li");
  const unsorted = person.person_id === null;
  const name = personName(person);
  item.className = `person${unsorted ? " unsorted" : ""}${person.hidden ? " is-hidden" : ""}`;
  item.dataset.person = unsorted ? "unsorted" : person.person_id;
  item.dataset.cover = person.cover;
  const open = Object.assign(document.createElement("button"), { type: "button", className: "open" });
  const caption = Object.assign(document.createElement("span"), { className: "caption" });
  caption.append(
    Object.assign(document.createElement("span"), { className: "name", textContent: name }),
    Object.assign(document.createElement("span"), { className: "count", textContent: plural(person.photos, "photo") }),
  );
  if (person.hidden) caption.append(Object.assign(document.createElement("span"), { className: "badge", textContent: "hidden" }));
  open.append(faceImage(person.cover_face, ""), caption);
  open.addEventListener("click", () => state.openPerson(person.person_id));
  item.append(open);
  if (person.hidden) {
    const show = Object.assign(document.createElement("button"), { type: "button", className: "unhide", textContent: "Show again" });
    show.setAttribute("aria-label", `Show again: ${name}`);
    show.addEventListener("click", () => act($("people-error"), async () => {
      await api("PUT", `/tag/people/${person.person_id}`, { hidden: false });
      await loadPeople();
      say($("people-notice"), `${name} is shown again.`);
      $("people").querySelector(`[data-person="${person.person_id}"] .open`)?.focus();
    }));
    item.append(show);
  }
  return item;
}
