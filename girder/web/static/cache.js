// The cache panel: large_image's cache statistics per tier and the clear
// button, both admin routes; when the server runs without an admin token
// the panel says so instead of asking for one.

import { $, api, el } from "./dom.js";

function formatBytes(n) {
  if (typeof n !== "number" || !isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

function tokenHeaders() {
  const t = $("cache-token").value.trim();
  return t ? { "Girder-Token": t } : {};
}

function cacheError(err) {
  if (err.status === 404) return "Cache statistics are not available on this server.";
  if (err.status === 401 || err.status === 403) return `${err.message} Enter the admin token.`;
  return `Cache statistics could not be read: ${err.message}`;
}

/** Flattens the cache info into rows: each object with hit/miss counters
 *  or a size is a tier. */
function cacheRows(info) {
  const names = { tileCache: "Tiles", tilesource: "Tile sources", memory: "memory", memcached: "memcached" };
  const rows = [];
  for (const [key, v] of Object.entries(info || {})) {
    if (!v || typeof v !== "object") continue;
    const base = names[key] || key;
    const subs = Object.entries(v).filter(([, s]) => s && typeof s === "object" && !Array.isArray(s) && ("hits" in s || "used" in s));
    if (subs.length) {
      for (const [sk, s] of subs) if (s.enabled !== false) rows.push([`${base} · ${names[sk] || sk}`, s]);
    } else rows.push([base, v]);
  }
  return rows;
}

function renderCache(info) {
  const rows = cacheRows(info);
  const head = el("tr", {}, ...["Tier", "Hit rate", "Hits", "Misses", "Items"].map((h) => el("th", { scope: "col", text: h })));
  const body = rows.map(([name, s]) => {
    const hits = s.hits ?? null;
    const misses = s.misses ?? null;
    const total = (hits ?? 0) + (misses ?? 0);
    const rate = hits === null ? "–" : total ? `${((100 * hits) / total).toFixed(1)}%` : "–";
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, name, el("span", { class: "size", text: `${formatBytes(s.used)} of ${formatBytes(s.maxsize)}` })),
      el("td", { text: rate }),
      el("td", { text: hits ?? "–" }),
      el("td", { text: misses ?? "–" }),
      el("td", { text: s.items ?? "–" }),
    );
  });
  const table = el("table", { class: "cache-table" }, el("caption", { class: "sr-only", text: "Cache tiers" }), el("thead", {}, head), el("tbody", {}, ...body));
  const extra = [];
  const tc = info && info.tileCache;
  if (tc && "produced" in tc) extra.push(`${tc.produced} tiles produced, ${tc.coalesced ?? 0} coalesced, ${tc.produceErrors ?? 0} errors`);
  $("cache-stats").replaceChildren(table, ...extra.map((t) => el("p", { class: "note", text: t })));
}

async function refreshCache() {
  const status = $("cache-status");
  status.classList.remove("error");
  status.textContent = "Loading…";
  try {
    renderCache(await api("large_image/cache", { headers: tokenHeaders() }));
    status.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    status.textContent = cacheError(err);
    status.classList.add("error");
  }
}

async function clearCache() {
  const status = $("cache-status");
  status.classList.remove("error");
  status.textContent = "Clearing…";
  try {
    const res = await api("large_image/cache/clear", { method: "PUT", headers: tokenHeaders() });
    renderCache(res.after);
    status.textContent = `Caches cleared at ${new Date(res.cacheCleared).toLocaleTimeString()}.`;
  } catch (err) {
    status.textContent = cacheError(err);
    status.classList.add("error");
  }
}

/** Wires the cache panel; without admin routes it only says so. */
export function initCachePanel() {
  $("cache-form").addEventListener("submit", (e) => {
    e.preventDefault();
    refreshCache();
  });
  $("cache-clear").addEventListener("click", clearCache);
  if (document.body.dataset.admin !== "off") return;
  $("cache-form").hidden = true;
  $("cache-status").textContent =
    "Admin routes are disabled: this server was started without --admin-token, so cache statistics cannot be shown here.";
}
