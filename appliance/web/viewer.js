// The full-screen viewer: one photo with its objects and faces outlined, its date, people, albums and
// objects; previous and next with the arrow keys, the buttons or a swipe; Escape closes. Each face's name
// opens that person's page.

import { $, act, api, basename, dayName, imageUrl, query } from "./api.js";
import { UNSORTED } from "./people.js";

const SVG = "http://www.w3.org/2000/svg";
const SWIPE = 50; // pixels a finger must travel sideways to turn the photo

export class Viewer {
  // onClose(index): the viewer was closed on that photo; onPerson(personId): a face's name was chosen (null:
  // a face that belongs to nobody yet).
  constructor({ onClose, onPerson }) {
    this.dialog = $("viewer");
    this.onClose = onClose;
    this.onPerson = onPerson;
    this.leaving = false;
    this.shown = 0; // bumped at every photo, so answers for a photo no longer shown are dropped
    $("viewer-prev").addEventListener("click", () => this.step(-1));
    $("viewer-next").addEventListener("click", () => this.step(1));
    $("viewer-close").addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => {
      if (!this.leaving) (this.sequence.onClose || this.onClose)(this.index);
      this.leaving = false;
    });
    this.dialog.addEventListener("keydown", (event) => this.key(event));
    for (const kind of ["objects", "faces"]) {
      $(`show-${kind}`).addEventListener("change", (event) => {
        $("viewer-stage").classList.toggle(`hide-${kind}`, !event.target.checked);
      });
    }
    this.swipes($("viewer-stage"));
  }

  // sequence: { count, itemAt(index) -> Promise<{ path, taken, ready }>, onClose?(index) instead of the viewer's }
  open(sequence, index) {
    this.sequence = sequence;
    if (!this.dialog.open) this.dialog.showModal();
    this.go(index);
  }

  key(event) {
    if (event.key === "ArrowLeft") this.step(-1);
    else if (event.key === "ArrowRight") this.step(1);
    else return;
    event.preventDefault();
  }

  swipes(stage) {
    let start = null;
    stage.addEventListener("pointerdown", (event) => { start = { x: event.clientX, y: event.clientY }; });
    stage.addEventListener("pointerup", (event) => {
      if (!start) return;
      const dx = event.clientX - start.x;
      const dy = event.clientY - start.y;
      start = null;
      if (Math.abs(dx) > SWIPE && Math.abs(dx) > 1.5 * Math.abs(dy)) this.step(dx < 0 ? 1 : -1);
    });
    stage.addEventListener("dragstart", (event) => event.preventDefault()); // a mouse drag is a swipe, not a drag
  }

  step(delta) {
    const index = this.index + delta;
    if (index >= 0 && index < this.sequence.count) this.go(index);
  }

  async go(index) {
    this.index = index;
    const shown = ++this.shown;
    $("viewer-prev").disabled = index === 0;
    $("viewer-next").disabled = index >= this.sequence.count - 1;
    $("viewer-position").textContent = `${(index + 1).toLocaleString("en")} of ${this.sequence.count.toLocaleString("en")}`;
    await act($("viewer-error"), async () => {
      const item = await this.sequence.itemAt(index);
      if (!item || shown !== this.shown) return;
      this.showPhoto(item);
      const path = query({ path: item.path });
      const [details, objects, faces] = await Promise.all([
        api("GET", `/images/details?${path}`),
        api("GET", `/images/class-ids?${path}`),
        api("GET", `/tag/faces?${path}`),
      ]);
      if (shown !== this.shown) return;
      this.drawBoxes(objects.objects, faces.faces);
      this.showFacts(details);
    });
  }

  // The thumbnail at once (it is cached), then the original once it has arrived.
  showPhoto(item) {
    $("viewer-title").textContent = basename(item.path);
    const photo = $("viewer-photo");
    photo.alt = `${basename(item.path)}${item.taken ? `, taken ${dayName(item.taken)}` : ""}`;
    if (item.ready) photo.src = imageUrl("thumbnail", item.path);
    else photo.removeAttribute("src");
    $("viewer-boxes").replaceChildren();
    $("viewer-labels").replaceChildren();
    $("viewer-facts").replaceChildren();
    const original = new Image();
    const shown = this.shown;
    original.onload = () => { if (shown === this.shown) photo.src = original.src; };
    original.onerror = () => { if (shown === this.shown && !item.ready) photo.alt += " (cannot be shown)"; };
    original.src = imageUrl("original", item.path);
  }

  // Objects' names repeat the facts below the photo (hidden from screen readers); a face's name is a button
  // to its person's page.
  drawBoxes(objects, faces) {
    const boxes = [];
    const labels = [];
    for (const o of objects) {
      boxes.push(rect(o.box, "object"));
      const text = label(o.box, "object", "span", o.label);
      text.setAttribute("aria-hidden", "true");
      labels.push(text);
    }
    for (const f of faces) {
      boxes.push(rect(f.box, "face"));
      const name = f.person_id === null ? UNSORTED : f.name || "Unnamed";
      const button = label(f.box, "face", "button", name);
      button.type = "button";
      button.setAttribute("aria-label", `${name}: open ${f.person_id === null ? "the faces not sorted yet" : "their page"}`);
      button.addEventListener("click", () => this.leave(() => this.onPerson(f.person_id)));
      labels.push(button);
    }
    $("viewer-boxes").replaceChildren(...boxes);
    $("viewer-labels").replaceChildren(...labels);
  }

  // Closed for another view: the focus goes there, not back to the photo's tile.
  leave(then) {
    this.leaving = true;
    this.dialog.close();
    then();
  }

  showFacts(details) {
    const taken = details.taken
      ? `${dayName(details.taken)}, ${details.taken.slice(11, 16)} (${details.dated_by === "exif" ? "camera's date" : "file's date"})`
      : "Not known yet";
    const named = details.people.filter((p) => p.name).map((p) => p.name);
    const unnamed = details.people.length - named.length;
    const people = unnamed ? [...named, unnamed === 1 ? "someone without a name" : `${unnamed} people without a name`] : named;
    const facts = [
      ["Taken", taken],
      ["People", people.join(", ") || (details.status === "done" ? "Nobody found" : "—")],
      ["Albums", details.albums.join(", ") || "In no album"],
      ["Objects", details.classes.join(", ") || (details.status === "done" ? "None found" : "—")],
      ["Folder", details.path.slice(0, details.path.lastIndexOf("/")) || "/"],
    ];
    if (details.width) facts.push(["Size", `${details.width} × ${details.height}`]);
    if (details.status === "pending") facts.unshift(["Status", "Being analysed: its objects and people appear when it is done"]);
    if (details.status === "failed") facts.unshift(["Status", `Could not be analysed: ${details.error}`]);
    $("viewer-facts").replaceChildren(...facts.flatMap(([term, value]) => [
      Object.assign(document.createElement("dt"), { textContent: term }),
      Object.assign(document.createElement("dd"), { textContent: value }),
    ]));
  }
}

function rect([x1, y1, x2, y2], kind) {
  const box = document.createElementNS(SVG, "rect");
  for (const [name, value] of Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1 })) box.setAttribute(name, value);
  box.setAttribute("class", kind);
  return box;
}

// A name beside its box, in HTML: SVG text would be stretched with the photo. An object's goes above its box,
// a face's below; at the photo's edge there is no room, and the label goes inside the box.
function label([x1, y1, , y2], kind, tag, text) {
  const inside = kind === "object" ? y1 < 0.06 : y2 > 0.94;
  const element = Object.assign(document.createElement(tag), { className: `label ${kind}${inside ? " inside" : ""}`, textContent: text });
  element.style.left = `${x1 * 100}%`;
  element.style.top = `${(kind === "object" ? y1 : y2) * 100}%`;
  return element;
}
