// Add folder: queue a folder on the appliance and follow its job until every file is analysed or failed.

import { $, act, api, basename, plural } from "./api.js";

const POLL_MS = 400;

export function setupFolders(setBusy) {
  $("folder-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("job").hidden = true; // the last job's outcome goes with the new request
    $("job-failures").replaceChildren();
    act($("folder-error"), () => addFolder(setBusy));
  });
}

async function addFolder(setBusy) {
  const result = await api("POST", "/images/add-folder", { folder_path: $("folder-path").value.trim() });
  $("job").hidden = false;
  if (!result.queued) {
    $("job-progress").value = 1;
    $("job-text").textContent = `${result.message}: nothing new to analyse.`;
    if (result.job_id) {
      const job = await api("GET", `/images/jobs/${result.job_id}`);
      showFailures(job.failures, job.failed);
    }
    return;
  }
  setBusy(true);
  try {
    await follow(result.job_id);
  } finally {
    setBusy(false);
  }
}

async function follow(jobId) {
  for (;;) {
    const job = await api("GET", `/images/jobs/${jobId}`);
    const finished = job.done + job.failed;
    $("job-progress").value = job.progress;
    $("job-text").textContent = `${job.finished ? "Finished: " : "Analysing: "}${finished} of ${job.total}`
      + ` (${Math.floor(job.progress * 100)}%)${job.finished ? "." : "; photos appear in Photos as they are done."}`;
    if (job.finished) {
      showFailures(job.failures, job.failed);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function showFailures(failures, count) {
  const items = failures.map((f) => Object.assign(document.createElement("li"), { textContent: `${basename(f.path)}: ${f.error}` }));
  if (count) $("job-text").textContent += ` ${plural(count, "file")} could not be added:`;
  $("job-failures").replaceChildren(...items);
}
