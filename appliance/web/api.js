// Talking to the appliance: the token, one fetch helper, and the messages shown next to what caused them.

export const $ = (id) => document.getElementById(id);

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function token() { return localStorage.getItem("appliance-token"); }

export function saveToken(value) {
  localStorage.setItem("appliance-token", value);
  // Images are fetched by <img> tags, which cannot send a header: the server accepts this cookie on GETs.
  document.cookie = `appliance_token=${encodeURIComponent(value)}; path=/; SameSite=Strict`;
}

export async function api(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "The appliance does not answer. Is it running, and is this device on its network?");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.detail || `${response.status} ${response.statusText}`);
  return data;
}

export const query = (params) => new URLSearchParams(params).toString();
export const imageUrl = (kind, path) => `/images/${kind}?${query({ path })}`;
export const basename = (path) => path.split("/").pop();
export const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;

// -- messages: an error or a confirmation sits next to the control that caused it, until the next action --

export function clearMessages() {
  for (const element of document.querySelectorAll(".error, .notice")) {
    element.textContent = "";
    element.hidden = true;
  }
}

export function say(element, text) {
  element.textContent = text;
  element.hidden = false;
}

let onTokenNeeded = () => {};
export function whenTokenNeeded(handler) { onTokenNeeded = handler; }

// Runs one user action: clears the old messages, and shows a failure next to `where` (a 401 opens the token
// screen, which says whether the token was missing or wrong). Never throws, so no error goes uncaught.
export async function act(where, action) {
  clearMessages();
  try {
    return await action();
  } catch (error) {
    report(where, error);
    return undefined;
  }
}

export function report(where, error) {
  if (error instanceof ApiError && error.status === 401) onTokenNeeded(error.message);
  else if (error instanceof ApiError) say(where, error.message);
  else {
    say(where, `Something went wrong in this page: ${error.message}`);
    console.warn(error);
  }
}

// -- dates --------------------------------------------------------------------------------------------------

export function monthName(month) {
  if (!month) return "Not analysed yet";
  const [year, number] = month.split("-").map(Number);
  return new Date(year, number - 1, 1).toLocaleDateString("en", { month: "long", year: "numeric" });
}

export function dayName(taken) {
  const [year, month, day] = taken.slice(0, 10).split("-").map(Number);
  return new Date(year, month - 1, day).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
}
