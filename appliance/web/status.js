// Status: the appliance's health (/health) in words: what it is doing, and what needs attention.

import { $, api, basename, plural } from "./api.js";

export async function loadStatus() {
  const health = await api("GET", "/health");
  const ok = health.status === "ok";
  $("status-summary").textContent = ok ? "Everything is working." : "Something needs attention:";
  $("status-summary").className = `summary-big ${ok ? "ok" : "degraded"}`;
  $("status-problems").replaceChildren(...(health.problems || []).map((problem) =>
    Object.assign(document.createElement("li"), { textContent: problem })));
  if (!health.images) return; // only the token shows more
  const facts = [
    ["Library", library(health.images)],
    ["Analysis", analysis(health.worker, health.queue)],
    ["Analysing again", reanalysis(health.reanalysis)],
    ["Disk", disk(health.disk)],
    ["Watching the folders", watching(health.watch)],
    ["Models", Object.entries(health.models.accelerators).map(([model, where]) => `${model} on the ${where === "cpu" ? "CPU" : "Edge TPU"}`).join(", ")],
    ["Version", `appliance ${health.version}, SQLite ${health.storage.sqlite}, Python ${health.python}`],
  ];
  $("status-facts").replaceChildren(...facts.flatMap(([term, value]) => [
    Object.assign(document.createElement("dt"), { textContent: term }),
    Object.assign(document.createElement("dd"), { textContent: value }),
  ]));
}

function library(images) {
  const parts = [`${plural(images.done, "photo")} analysed`];
  if (images.pending) parts.push(`${images.pending.toLocaleString("en")} waiting to be analysed`);
  if (images.failed) parts.push(`${images.failed.toLocaleString("en")} could not be read (see Add folder's list for why)`);
  return `${parts.join(", ")}.`;
}

function analysis(worker, queue) {
  const busy = worker.busy.map((b) => `${basename(b.path)} (${b.seconds.toFixed(1)} s)`);
  const doing = busy.length ? `working on ${busy.join(", ")}` : "idle";
  const waiting = queue.queued ? `; ${plural(queue.queued, "file")} in the queue` : "; nothing in the queue";
  return `${plural(worker.workers, "analyser")}, ${doing}${waiting}.`;
}

function reanalysis(job) {
  if (!job) return "Not needed: every photo was analysed by the models in use.";
  return `After a change of models, every photo is analysed again: ${Math.floor(job.progress * 100)}%`
    + ` (${job.done.toLocaleString("en")} of ${job.total.toLocaleString("en")}${job.failed ? `, ${job.failed} failed` : ""}).`
    + " Until then the old results are shown.";
}

function disk(room) {
  const free = `${(room.free_bytes / 1e9).toFixed(1)} GB free in ${room.path}`;
  return room.full ? `Full (${free}): adding photos is paused until space is freed.` : `${free}.`;
}

function watching(watch) {
  const modes = {
    watching: "New, changed, moved and deleted photos in the library folders are noticed as they happen.",
    "partly watched": "Only some folders are followed as they change; the rest are checked every few minutes.",
    "scan only": "The folders are checked every few minutes (changes cannot be followed as they happen).",
    off: "Off: only folders added with Add folder are indexed.",
    starting: "Starting.",
  };
  const parts = [modes[watch.mode] || watch.mode];
  if (watch.problem) parts.push(watch.problem);
  if (watch.waiting_to_settle) parts.push(`${plural(watch.waiting_to_settle, "file")} waiting until they stop changing.`);
  for (const root of watch.unavailable_roots) parts.push(`${root} shows no photos: is its disk plugged in or its share mounted?`);
  if (watch.last_reconcile) parts.push(`Last full check: ${new Date(watch.last_reconcile).toLocaleString("en")}.`);
  return parts.join(" ");
}
