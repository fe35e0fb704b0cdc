// The photo grid: months (or one group) of square tiles, virtualised. The page is as tall as the whole list,
// but only the tiles near the screen exist, and only their pages of photos are fetched.

import { basename, dayName, imageUrl, monthName, plural } from "./api.js";

const GAP = 6;
const HEADER = 44; // a month's heading
const GROUP_GAP = 12;
export const CHUNK = 120; // photos per request
const KEEP_CHUNKS = 40; // pages kept in memory (4,800 photos' paths)
const BUFFER = 0.75; // screens rendered above and below the visible one

export class PhotoGrid {
  // source: { groups: [{ month, count }], fetch(offset, limit) -> Promise<[{ path, taken, ready }]>,
  //          first: the promise of fetch(0, CHUNK) when it was asked already }
  constructor(element, { onOpen, isSelected, onSelect, onError }) {
    this.element = element;
    this.handlers = { onOpen, isSelected, onSelect, onError };
    this.source = { groups: [], fetch: async () => [] };
    this.blocks = [];
    this.chunks = new Map();
    this.noPreview = new Set(); // thumbnails that failed to load: not asked again at every refresh
    this.scheduled = false;
    addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.relayout()).observe(element);
  }

  get total() { return this.blocks.reduce((sum, block) => sum + block.count, 0); }

  // A new list. `keepPlace`: the same list again, changed (photos analysed meanwhile).
  show(source, { keepPlace = false } = {}) {
    const sameGroups = keepPlace && sameShape(this.source.groups, source.groups);
    this.source = source;
    this.chunks.clear();
    if (source.first) this.chunks.set(0, source.first);
    if (sameGroups) {
      for (const tile of this.element.querySelectorAll(".tile")) this.load(tile);
    } else {
      this.redraw();
    }
  }

  relayout() {
    if (this.element.clientWidth && this.element.clientWidth !== this.width) this.redraw();
  }

  // Every tile placed again (a new list, a new width); the focused photo gets the focus back once its tile is
  // filled again (see fill).
  redraw() {
    this.refocus = document.activeElement?.closest?.("#grid .tile")?.dataset.path;
    setTimeout(() => { this.refocus = undefined; }, 2000); // not later, when it would steal the focus
    this.element.replaceChildren();
    this.layout();
    this.update();
  }

  layout() {
    const width = (this.width = this.element.clientWidth);
    const smallest = width < 560 ? 100 : 140;
    this.columns = Math.max(2, Math.floor((width + GAP) / (smallest + GAP)));
    this.size = (width - GAP * (this.columns - 1)) / this.columns;
    let top = 0;
    let start = 0;
    this.blocks = this.source.groups.map((group, number) => {
      const rows = Math.ceil(group.count / this.columns);
      const block = { ...group, number, start, top, rows, height: HEADER + rows * (this.size + GAP) };
      top += block.height + GROUP_GAP;
      start += group.count;
      return block;
    });
    this.element.style.height = `${top}px`;
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.update(); });
  }

  // Draw the months and tiles within a screen or so of the visible part; remove the others.
  update() {
    if (!this.element.offsetParent) return; // hidden view
    const top = -this.element.getBoundingClientRect().top;
    this.visible = [top, top + innerHeight];
    const from = top - innerHeight * BUFFER;
    const to = top + innerHeight * (1 + BUFFER);
    const wanted = new Map(this.blocks.filter((b) => b.top + b.height > from && b.top < to).map((b) => [b.number, b]));
    for (const section of [...this.element.children]) {
      if (!wanted.has(Number(section.dataset.group))) section.remove();
    }
    for (const block of wanted.values()) this.drawBlock(block, from, to);
  }

  drawBlock(block, from, to) {
    const row = this.size + GAP;
    const firstRow = Math.max(0, Math.floor((from - block.top - HEADER) / row));
    const lastRow = Math.min(block.rows, Math.ceil((to - block.top - HEADER) / row));
    const lo = block.start + firstRow * this.columns;
    const hi = Math.min(block.start + block.count, block.start + lastRow * this.columns);
    const section = this.section(block);
    const list = section.querySelector(".tiles");
    const [oldLo, oldHi] = section.range || [hi, hi];
    // Tiles stay in index order in the DOM (the order of Tab and of screen readers), and those already
    // drawn are kept, so a focused tile keeps its focus.
    for (const tile of [...list.children]) {
      const index = Number(tile.dataset.index);
      if (index < lo || index >= hi) tile.remove();
    }
    const overlap = oldLo < hi && lo < oldHi;
    const before = document.createDocumentFragment();
    for (let i = lo; i < (overlap ? oldLo : hi); i++) before.append(this.tile(block, i));
    list.prepend(before);
    if (overlap) for (let i = oldHi; i < hi; i++) list.append(this.tile(block, i));
    section.range = [lo, hi]; // the indices drawn in it now
  }

  section(block) {
    let section = this.element.querySelector(`:scope > section[data-group="${block.number}"]`);
    if (section) return section;
    section = document.createElement("section");
    section.className = "month";
    section.dataset.group = block.number;
    section.dataset.month = block.month ?? "";
    Object.assign(section.style, { top: `${block.top}px`, height: `${block.height}px` });
    const heading = document.createElement("h3");
    heading.textContent = block.label ?? monthName(block.month);
    const count = Object.assign(document.createElement("span"), { className: "count", textContent: plural(block.count, "photo") });
    heading.append(" ", count);
    const list = Object.assign(document.createElement("div"), { className: "tiles" });
    list.setAttribute("role", "list");
    section.append(heading, list);
    const next = [...this.element.children].find((other) => Number(other.dataset.group) > block.number);
    this.element.insertBefore(section, next || null);
    return section;
  }

  tile(block, index) {
    const tile = document.createElement("div");
    tile.className = "tile loading";
    tile.setAttribute("role", "listitem");
    tile.dataset.index = index;
    const position = index - block.start;
    const row = Math.floor(position / this.columns);
    const column = position % this.columns;
    const y = block.top + HEADER + row * (this.size + GAP);
    tile.onScreen = y + this.size > this.visible[0] && y < this.visible[1];
    Object.assign(tile.style, {
      top: `${y - block.top}px`,
      left: `${column * (this.size + GAP)}px`,
      width: `${this.size}px`,
      height: `${this.size}px`,
    });
    this.load(tile);
    return tile;
  }

  load(tile) {
    const index = Number(tile.dataset.index);
    this.item(index).then((item) => { if (item) this.fill(tile, item); }, (error) => this.handlers.onError(error));
  }

  // The tile's content for its photo; nothing is redrawn when the photo and its state are the same.
  fill(tile, item) {
    const state = this.noPreview.has(item.path) ? "failed" : item.ready ? "ready" : "pending";
    if (tile.dataset.path === item.path && tile.dataset.state === state) return;
    const hadFocus = tile.contains(document.activeElement) ? document.activeElement.className : null;
    const name = basename(item.path);
    Object.assign(tile.dataset, { path: item.path, state, taken: item.taken ?? "" });
    tile.className = `tile ${state}`;
    tile.title = item.path;
    const open = Object.assign(document.createElement("button"), { type: "button", className: "open" });
    if (state === "ready") {
      const alt = item.taken ? `${name}, ${dayName(item.taken)}` : name;
      const img = Object.assign(document.createElement("img"), { alt, decoding: "async" });
      img.fetchPriority = tile.onScreen ? "high" : "low"; // those drawn ahead, above and below, after
      img.addEventListener("error", () => {
        this.noPreview.add(item.path);
        if (tile.dataset.path === item.path) this.fill(tile, item);
      }, { once: true });
      img.src = imageUrl("thumbnail", item.path);
      open.append(img);
    } else {
      const words = state === "pending" ? "Being analysed…" : "No preview";
      open.append(Object.assign(document.createElement("span"), { className: "placeholder", textContent: words }));
      open.setAttribute("aria-label", `${name}, ${words.replace("…", "").toLowerCase()}`);
    }
    open.addEventListener("click", () => this.handlers.onOpen(Number(tile.dataset.index)));
    const pick = Object.assign(document.createElement("input"), { type: "checkbox", className: "pick" });
    pick.setAttribute("aria-label", `Select ${name}`);
    pick.checked = this.handlers.isSelected(item.path);
    pick.addEventListener("change", () => this.handlers.onSelect(item.path, pick.checked));
    tile.replaceChildren(open, pick);
    if (hadFocus) tile.querySelector(`.${hadFocus.split(" ")[0]}`)?.focus();
    if (this.refocus === item.path) {
      this.refocus = undefined;
      open.focus({ preventScroll: true });
    }
  }

  // The photo at a place in the list, from its page (fetched once, kept while recent).
  async item(index) {
    if (index < 0 || index >= this.total) return undefined;
    const number = Math.floor(index / CHUNK);
    let chunk = this.chunks.get(number);
    if (!chunk) {
      chunk = this.source.fetch(number * CHUNK, CHUNK);
      chunk.catch(() => this.chunks.delete(number)); // asked again next time
      this.chunks.set(number, chunk);
      if (this.chunks.size > KEEP_CHUNKS) this.chunks.delete(this.chunks.keys().next().value);
    }
    return (await chunk)[index - number * CHUNK];
  }

  // Where each year starts (for the scrubber), newest first.
  years() {
    const years = new Map();
    for (const block of this.blocks) {
      const year = block.month?.slice(0, 4);
      if (year && !years.has(year)) years.set(year, block);
    }
    return [...years.keys()];
  }

  scrollToYear(year) {
    const block = this.blocks.find((b) => b.month?.startsWith(year));
    if (block) scrollTo({ top: this.documentTop() + block.top - this.stickyOffset() });
  }

  // The year shown at the top of the screen now (the last one when the page cannot scroll further).
  currentYear() {
    const top = -this.element.getBoundingClientRect().top + this.stickyOffset() + 1;
    const atEnd = scrollY + innerHeight >= document.documentElement.scrollHeight - 2;
    const block = (atEnd ? this.blocks.at(-1) : this.blocks.findLast((b) => b.top <= top)) || this.blocks[0];
    return block?.month?.slice(0, 4);
  }

  // Bring a photo's tile on screen (after the viewer stepped through photos) and focus it.
  reveal(index) {
    const block = this.blocks.findLast((b) => b.start <= index);
    if (!block) return;
    const row = Math.floor((index - block.start) / this.columns);
    const y = this.documentTop() + block.top + HEADER + row * (this.size + GAP);
    if (y < scrollY + this.stickyOffset() || y + this.size > scrollY + innerHeight) scrollTo({ top: y - innerHeight / 3 });
    this.update();
    this.element.querySelector(`.tile[data-index="${index}"] .open`)?.focus({ preventScroll: true });
  }

  documentTop() { return this.element.getBoundingClientRect().top + scrollY; }

  stickyOffset() {
    const years = document.getElementById("years");
    return years && getComputedStyle(years).position === "sticky" && years.offsetWidth > innerWidth / 2 ? years.offsetHeight : 0;
  }
}

function sameShape(a, b) {
  return a.length === b.length && a.every((group, i) => group.month === b[i].month && group.count === b[i].count && group.label === b[i].label);
}
