// Small helpers the page's modules share: element lookup and creation, and
// Girder API calls that fail with the server's message.

import { errorFrom } from "./tiles.js";

export const API = "/api/v1";
export const $ = (id) => document.getElementById(id);

/** GET/PUT a Girder route; throws HttpError with the server's message. */
export async function api(path, { method = "GET", headers = {} } = {}) {
  const res = await fetch(`${API}/${path}`, { method, headers, credentials: "same-origin" });
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
