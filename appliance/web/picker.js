// The people picker: a dialog listing people by a crop of their face and their name, to tick several (to
// merge them into one) or choose one (to move a face to). A box narrows the list by name.

import { $, plural, say } from "./api.js";
import { faceImage, personName } from "./people.js";

const state = { settle: null, chosen: null, opener: null };

export function setupPicker() {
  const dialog = $("picker");
  $("picker-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const ticked = [...$("picker-people").querySelectorAll("input:checked")].map((input) => Number(input.value));
    if (!ticked.length) {
      say($("picker-error"), $("picker-people").querySelector("input[type=checkbox]") ? "Tick at least one person." : "Choose a person.");
      return;
    }
    state.chosen = ticked;
    dialog.close();
  });
  $("picker-cancel").addEventListener("click", () => dialog.close());
  $("picker-filter").addEventListener("input", filter);
  dialog.addEventListener("close", () => {
    state.opener?.focus(); // back where the user was (the caller may move it on, if that is gone)
    state.settle?.(state.chosen);
    state.settle = null;
  });
}

// Resolves to the ids chosen, or null when the user cancels (Cancel, Escape).
export function pickPeople({ title, hint, submit, people, multiple }) {
  $("picker-title").textContent = title;
  $("picker-hint").textContent = hint;
  $("picker-submit").textContent = submit;
  $("picker-submit").hidden = people.length === 0;
  $("picker-filter").value = "";
  $("picker-find").hidden = people.length < 2;
  $("picker-error").hidden = true;
  $("picker-empty").hidden = people.length > 0;
  $("picker-none").hidden = true;
  $("picker-people").replaceChildren(...people.map((person) => option(person, multiple)));
  state.chosen = null;
  state.opener = document.activeElement;
  $("picker").showModal();
  $("picker-people").querySelector("input")?.focus();
  return new Promise((resolve) => { state.settle = resolve; });
}

function option(person, multiple) {
  const item = document.createElement("li");
  item.dataset.name = personName(person).toLowerCase();
  const label = document.createElement("label");
  const input = Object.assign(document.createElement("input"), {
    type: multiple ? "checkbox" : "radio",
    name: "person",
    value: person.person_id,
  });
  const text = Object.assign(document.createElement("span"), { className: "name", textContent: personName(person) });
  const count = Object.assign(document.createElement("span"), { className: "count", textContent: plural(person.photos, "photo") });
  if (person.hidden) count.textContent += ", hidden";
  label.append(input, faceImage(person.cover_face, ""), text, count);
  item.append(label);
  return item;
}

function filter() {
  const words = $("picker-filter").value.trim().toLowerCase();
  let shown = 0;
  for (const item of $("picker-people").children) {
    item.hidden = !item.dataset.name.includes(words);
    shown += item.hidden ? 0 : 1;
  }
  $("picker-none").hidden = shown > 0;
}
