// A person's page: their faces as crops, a page at a time; rename, hide or show again, merge other people into
// this one, take a face out ("Not Ana") or move it to someone else. The faces that belong to nobody have the
// same page, where a face can only be moved to a person.

import { $, act, api, ApiError, basename, plural, query, say } from "./api.js";
import { everyone, faceImage, loadPeople, personName, UNSORTED } from "./people.js";
import { pickPeople } from "./picker.js";

const FACES_PAGE = 60; // faces asked for at a time: a person can have thousands

const state = { person: null, people: [], offset: 0, handlers: null };

// How buttons and messages speak of a person: "Not Ana", "Not this person"; "an unnamed person (3 photos)".
const called = (person) => person.name || "this person";
const described = (person) => person.name || `an unnamed person (${plural(person.photos, "photo")})`;
const sentence = (text) => text[0].toUpperCase() + text.slice(1);

// handlers: show(view), openPhotos(personId, name), openViewer(sequence, index)
export function setupPerson(handlers) {
  state.handlers = handlers;
  $("person-rename").addEventListener("submit", rename);
  $("person-photos").addEventListener("click", () => handlers.openPhotos(state.person.person_id, personName(state.person)));
  $("person-merge").addEventListener("click", merge);
  $("person-hide").addEventListener("click", toggleHidden);
  $("faces-more").addEventListener("click", () => act($("faces-error"), async () => {
    const before = $("faces").children.length;
    await loadFaces(false);
    $("faces").children[before]?.querySelector(".open").focus(); // the first of the new faces
  }));
}

// The page of one person (null: the faces nobody is yet).
export async function openPerson(personId) {
  state.handlers.show("person");
  state.person = { person_id: personId, name: null, photos: 0, hidden: false };
  $("person-title").textContent = personId === null ? UNSORTED : "";
  $("person-summary").textContent = "";
  for (const part of ["person-about", "person-actions", "faces-empty", "faces-more"]) $(part).hidden = true;
  $("faces").replaceChildren();
  $("person-title").focus();
  if (!(await refresh())) {
    throw new ApiError(404, "This person has no faces any more: merged into someone else, or every face taken out.");
  }
  await loadFaces(true);
}

// The person's name and counts again, from the server. False when they have no face left.
async function refresh() {
  state.people = await everyone();
  const id = state.person.person_id;
  const found = state.people.find((p) => p.person_id === id);
  if (!found && id !== null) return false;
  state.person = found || { person_id: null, name: null, photos: 0, hidden: false };
  drawHeader();
  return true;
}

function drawHeader() {
  const person = state.person;
  const name = called(person);
  const unsorted = person.person_id === null;
  $("person-title").textContent = personName(person);
  $("person-summary").textContent = `${plural(person.photos, "photo")}${person.hidden ? " · hidden" : ""}`;
  $("person-about").hidden = !unsorted;
  $("person-actions").hidden = unsorted;
  $("person-name").value = person.name || "";
  $("person-photos").textContent = person.name ? `Photos of ${name}` : "Their photos";
  $("person-photos").hidden = person.hidden; // their photos come from /tag/clusters, which leaves them out
  $("person-merge").textContent = `Merge others into ${name}…`;
  $("person-hide").textContent = person.hidden ? `Show ${name} again` : `Hide ${name}`;
}

// -- the faces ----------------------------------------------------------------------------------------------

async function loadFaces(fromStart) {
  const person = state.person;
  if (fromStart) state.offset = 0;
  const page = query({ offset: state.offset, limit: FACES_PAGE + 1 }); // one more: is there another page?
  const url = person.person_id === null ? `/tag/unassigned-faces?${page}` : `/tag/people/${person.person_id}/faces?${page}`;
  const faces = (await api("GET", url)).faces;
  if (person !== state.person) return; // another page was opened meanwhile
  const shown = faces.slice(0, FACES_PAGE);
  if (fromStart) $("faces").replaceChildren();
  $("faces").append(...shown.map(faceCard));
  state.offset += shown.length;
  $("faces-more").hidden = faces.length <= FACES_PAGE;
  $("faces-empty").hidden = $("faces").children.length > 0;
}

function faceCard(face) {
  const item = Object.assign(document.createElement("li"), { className: "face" });
  Object.assign(item.dataset, { face: face.face_id, path: face.path });
  const file = basename(face.path);
  const open = Object.assign(document.createElement("button"), { type: "button", className: "open" });
  open.setAttribute("aria-label", `${file}: open the photo`);
  open.append(faceImage(face.face_id, ""));
  open.addEventListener("click", () => openPhoto(item));
  const caption = Object.assign(document.createElement("p"), { className: "caption", textContent: file });
  if (!face.good) caption.textContent += " · small or unclear";
  caption.title = face.path;
  const error = Object.assign(document.createElement("p"), { className: "error", hidden: true });
  error.setAttribute("role", "alert");
  const buttons = Object.assign(document.createElement("div"), { className: "actions" });
  const name = called(state.person);
  if (state.person.person_id !== null) {
    buttons.append(button(`Not ${name}`, `Not ${name}: take the face in ${file} out`, () => takeOut(item, face, error)));
  }
  buttons.append(button("Move…", `Move the face in ${file} to another person`, () => move(item, face, error)));
  item.append(open, caption, buttons, error);
  return item;
}

function button(text, label, onClick) {
  const element = Object.assign(document.createElement("button"), { type: "button", textContent: text });
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

// The photos of the faces listed, in the viewer; closing it comes back to the face.
function openPhoto(item) {
  const cards = [...$("faces").children];
  state.handlers.openViewer({
    count: cards.length,
    itemAt: async (index) => ({ path: cards[index].dataset.path, taken: null, ready: true }),
    onClose: (index) => cards[index]?.querySelector(".open").focus(),
  }, cards.indexOf(item));
}

async function takeOut(item, face, error) {
  const name = called(state.person);
  await act(error, async () => {
    await api("PUT", `/tag/faces/${face.face_id}`, { person_id: null });
    await faceLeft(item, `Took the face in ${basename(face.path)} out of ${name}: it is under “${UNSORTED}” now.`);
  });
}

async function move(item, face, error) {
  const others = state.people.filter((p) => p.person_id !== null && p.person_id !== state.person.person_id);
  const file = basename(face.path);
  const chosen = await pickPeople({
    title: `Who is in ${file}?`,
    hint: "Choose the person this face is; it stays with them.",
    submit: "Move the face",
    people: others,
    multiple: false,
  });
  if (!chosen) return;
  const target = others.find((p) => p.person_id === chosen[0]);
  await act(error, async () => {
    await api("PUT", `/tag/faces/${face.face_id}`, { person_id: target.person_id });
    await faceLeft(item, `Moved the face in ${file} to ${described(target)}.`);
  });
}

// A face left this page: its card goes, the focus moves to the next one, the counts are told again.
async function faceLeft(item, message) {
  const next = item.nextElementSibling || item.previousElementSibling;
  item.remove();
  state.offset -= 1;
  if (!(await refresh())) {
    await backToPeople(`${message} ${sentence(called(state.person))} has no faces left.`);
    return;
  }
  if (!$("faces").children.length) await loadFaces(true); // the next page, if there is one
  $("faces-empty").hidden = $("faces").children.length > 0;
  say($("faces-notice"), message);
  (next?.isConnected ? next.querySelector(".open") : $("faces-title")).focus();
}

async function backToPeople(message) {
  state.handlers.show("people");
  await loadPeople();
  say($("people-notice"), message);
  $("people-title").focus();
}

// -- the person ---------------------------------------------------------------------------------------------

async function rename(event) {
  event.preventDefault();
  const name = $("person-name").value.trim();
  await act($("person-error"), async () => {
    await api("PUT", `/tag/people/${state.person.person_id}`, { name });
    await refresh();
    await loadFaces(true); // their buttons say the new name
    const twin = name && state.people.find((p) => p.person_id !== state.person.person_id && p.name?.toLowerCase() === name.toLowerCase());
    say($("person-notice"), (name ? `Named ${name}.` : "Name cleared: Unnamed.")
      + (twin ? ` Someone else is called ${twin.name} too: if they are the same person, merge them into this one.` : ""));
  });
}

async function merge() {
  const person = state.person;
  const name = called(person);
  const others = state.people.filter((p) => p.person_id !== null && p.person_id !== person.person_id);
  const chosen = await pickPeople({
    title: `Merge into ${name}`,
    hint: `Tick the people who are ${name} too: their faces become ${name}'s.`,
    submit: "Merge",
    people: others,
    multiple: true,
  });
  if (!chosen) return;
  const who = new Intl.ListFormat("en").format(others.filter((p) => chosen.includes(p.person_id)).map(described));
  if (!confirm(`Merge ${who} into ${name}? Their faces become ${name}'s; to part them again, move faces one by one.`)) return;
  await act($("person-error"), async () => {
    await api("POST", `/tag/people/${person.person_id}/merge`, { people: chosen });
    await refresh();
    await loadFaces(true);
    say($("person-notice"), `Merged ${who} into ${called(state.person)}: ${plural(state.person.photos, "photo")} now.`);
  });
}

async function toggleHidden() {
  const person = state.person;
  const name = sentence(called(person));
  await act($("person-error"), async () => {
    await api("PUT", `/tag/people/${person.person_id}`, { hidden: !person.hidden });
    if (person.hidden) {
      await refresh();
      say($("person-notice"), `${name} is shown again.`);
    } else {
      await backToPeople(`${name} is hidden: left out of People. Tick “Show hidden people” to see them again.`);
    }
  });
}
