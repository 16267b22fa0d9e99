// The viewer page: folder/item browser, one OpenSeadragon viewer, frame and
// style controls, metadata, associated images and the cache panel. State
// lives in the URL hash (#folder=ID&item=ID) so views can be linked.

import { makeTileSource, tileUrl, errorFrom, rememberTile } from "./tiles.js";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);

/** GET/PUT a Girder route; throws HttpError with the server's message. */
async function api(path, { method = "GET", headers = {} } = {}) {
  const res = await fetch(`${API}/${path}`, { method, headers, credentials: "same-origin" });
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

function el(tag, attrs = {}, ...children) {
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

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function linkTo(folder, item) {
  const p = new URLSearchParams();
  if (folder) p.set("folder", folder);
  if (item) p.set("item", item);
  return `#${p}`;
}

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

// ---------------------------------------------------------------- browser

const folderCache = new Map(); // id → folder JSON
let shownFolder = null;

async function folder(id) {
  if (!folderCache.has(id)) folderCache.set(id, await api(`folder/${id}`));
  return folderCache.get(id);
}

/** The top folders: every collection's root folders. */
async function rootFolders() {
  const out = [];
  for (const c of await api("collection")) {
    const fs = await api(`folder?parentType=collection&parentId=${c._id}&limit=0`);
    for (const f of fs) folderCache.set(f._id, f);
    out.push(...fs);
  }
  return out;
}

async function breadcrumbs(id) {
  const chain = [];
  let cur = id ? await folder(id) : null;
  while (cur) {
    chain.unshift(cur);
    cur = cur.parentCollection === "folder" ? await folder(cur.parentId) : null;
  }
  return chain;
}

async function showFolder(id) {
  const status = $("browser-status");
  status.textContent = "Loading…";
  try {
    if (!id) {
      const roots = await rootFolders();
      if (roots.length === 1) id = roots[0]._id;
      else {
        renderFolder(null, roots, [], []);
        status.textContent = roots.length ? "" : "No folders yet.";
        return null;
      }
    }
    const [chain, subs, items] = await Promise.all([
      breadcrumbs(id),
      api(`folder?parentType=folder&parentId=${id}&limit=0`),
      api(`item?folderId=${id}&limit=0`),
    ]);
    for (const f of subs) folderCache.set(f._id, f);
    renderFolder(id, subs, items, chain);
    status.textContent = subs.length || items.length ? "" : "This folder is empty.";
    return id;
  } catch (err) {
    status.textContent = `Could not list the folder: ${err.message}`;
    return null;
  }
}

function renderFolder(id, subs, items, chain) {
  shownFolder = id;
  const crumbs = $("crumbs");
  crumbs.replaceChildren(
    ...chain.map((f, i) =>
      el("li", {}, el("a", { href: linkTo(f._id), "aria-current": i === chain.length - 1 ? "page" : null, text: f.name })),
    ),
  );
  const up = chain.length > 1 ? chain[chain.length - 2] : null;
  $("folders").replaceChildren(
    ...(up ? [el("li", {}, el("a", { class: "folder up", href: linkTo(up._id), text: `.. ${up.name}` }))] : []),
    ...subs.map((f) => el("li", {}, el("a", { class: "folder", href: linkTo(f._id), text: f.name }))),
  );
  $("items").replaceChildren(
    ...items.map((it) => {
      const hasImage = it.largeImage && it.largeImage.fileId;
      const thumb = hasImage
        ? el("img", {
            src: `${API}/item/${it._id}/tiles/thumbnail?width=160&height=160`,
            alt: "",
            width: 160,
            height: 160,
            loading: "lazy",
            decoding: "async",
          })
        : el("span", { class: "no-thumb", text: "no image" });
      if (hasImage) thumb.addEventListener("error", () => thumb.replaceWith(el("span", { class: "no-thumb", text: "no preview" })), { once: true });
      return el(
        "li",
        {},
        el("a", { class: "card", href: linkTo(id, it._id), "data-item": it._id, title: it.name }, thumb, el("span", { class: "name", text: it.name })),
      );
    }),
  );
  markCurrentItem();
}

function markCurrentItem() {
  for (const a of document.querySelectorAll("#items a.card")) {
    if (a.dataset.item === current.id) a.setAttribute("aria-current", "true");
    else a.removeAttribute("aria-current");
  }
}

// ----------------------------------------------------------------- viewer

const libUrl = document.body.dataset.viewerLib;
let osdPromise = null;

/** Loads OpenSeadragon once; resolves null when the build lacks it. */
function loadOSD() {
  if (!libUrl) return Promise.resolve(null);
  osdPromise ??= new Promise((resolve, reject) => {
    const s = el("script", { src: libUrl });
    s.onload = () => resolve(window.OpenSeadragon);
    s.onerror = () => reject(new Error("the viewer library did not load"));
    document.head.append(s);
  });
  return osdPromise;
}

let viewer = null;
const current = { id: null, meta: null, frame: 0, style: "", multiFrame: false };
// The tiled image replacing the one on screen (frame or style change).
let pending = null;

function tileOpts() {
  return { frame: current.frame, multiFrame: current.multiFrame, style: current.style };
}

function createViewer(OSD) {
  const libBase = libUrl.replace(/[^/]*$/, "");
  const v = OSD({
    element: $("viewer"),
    prefixUrl: `${libBase}images/`,
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    navigatorAutoFade: false,
    showRotationControl: false,
    showFullPageControl: true,
    maxZoomPixelRatio: 2,
    visibilityRatio: 1,
    constrainDuringPan: true,
    minZoomImageRatio: 0.9,
    animationTime: 0.6,
    springStiffness: 8,
    zoomPerScroll: 1.4,
    immediateRender: true,
    imageLoaderLimit: 6,
    maxImageCacheCount: 600,
    crossOriginPolicy: false,
    ajaxWithCredentials: false,
    loadTilesWithAjax: false,
    gestureSettingsMouse: { clickToZoom: true, dblClickToZoom: false, flickEnabled: true },
    drawer: ["canvas", "html"],
  });
  v.addHandler("animation", updateZoomInfo);
  v.addHandler("open", updateZoomInfo);
  // aria-busy tells assistive technology (and the browser test) whether
  // the tiles for the current view are still arriving.
  v.world.addHandler("add-item", ({ item }) => {
    item.addHandler("fully-loaded-change", updateBusy);
    updateBusy();
  });
  v.world.addHandler("remove-item", updateBusy);
  return v;
}

function updateBusy() {
  const w = viewer.world;
  let busy = false;
  for (let i = 0; i < w.getItemCount(); i++) if (!w.getItemAt(i).getFullyLoaded()) busy = true;
  $("viewer").setAttribute("aria-busy", String(busy));
}

function updateZoomInfo() {
  if (!viewer || !current.meta || !viewer.world.getItemCount()) return;
  const img = viewer.world.getItemAt(0);
  const zoom = img.viewportToImageZoom(viewer.viewport.getZoom(true));
  const levels = current.meta.levels;
  const z = Math.min(levels - 1, Math.max(0, Math.ceil(levels - 1 + Math.log2(zoom * (window.devicePixelRatio || 1)))));
  $("zoom-info").textContent = `${(zoom * 100).toFixed(zoom < 0.1 ? 1 : 0)}% · level ${z} of ${levels - 1}`;
}

function stageMessage(text) {
  const m = $("stage-message");
  m.textContent = text;
  m.hidden = !text;
}

async function openItem(id) {
  if (id === current.id) return;
  current.id = id;
  markCurrentItem();
  if (!id) {
    $("viewer-section").hidden = true;
    $("meta-section").hidden = true;
    $("assoc-section").hidden = true;
    stageMessage("Choose an image on the left.");
    return;
  }
  stageMessage("Loading…");
  let item, meta;
  try {
    [item, meta] = await Promise.all([api(`item/${id}`), api(`item/${id}/tiles`)]);
  } catch (err) {
    if (current.id !== id) return;
    $("viewer-section").hidden = true;
    stageMessage(`This item cannot be shown: ${err.message}`);
    return;
  }
  if (current.id !== id) return; // another item was chosen meanwhile
  current.meta = meta;
  current.frame = 0;
  current.style = "";
  current.multiFrame = Array.isArray(meta.frames) && meta.frames.length > 1;
  $("item-title").textContent = item.name;
  $("zoom-info").textContent = "";
  showMetadata(meta);
  showAssociated(id);
  setupFrames(meta);
  setupStyle(meta);

  let OSD;
  try {
    OSD = await loadOSD();
  } catch (err) {
    OSD = null;
  }
  if (current.id !== id) return;
  $("viewer-section").hidden = false;
  if (!OSD) {
    stageMessage("The viewer library (OpenSeadragon) is missing from this build: run `make web` and rebuild the server. Browsing, metadata and thumbnails still work.");
    $("viewer").hidden = true;
    return;
  }
  stageMessage("");
  viewer ??= createViewer(OSD);
  $("viewer").setAttribute("aria-busy", "true");
  pending = null;
  viewer.open(makeTileSource(OSD, meta, id, tileOpts()));
}

/** Swaps the image for another frame or style, keeping the viewport: the
 *  new image loads on top and the old one goes once the new one covers
 *  the view, so nothing flashes. A newer swap cancels an unfinished one. */
async function replaceImage() {
  const OSD = await loadOSD();
  if (!OSD || !viewer || !current.meta) return;
  if (pending) {
    viewer.world.removeItem(pending);
    pending = null;
  }
  const id = current.id;
  viewer.addTiledImage({
    tileSource: makeTileSource(OSD, current.meta, id, tileOpts()),
    success: ({ item }) => {
      if (current.id !== id) {
        viewer.world.removeItem(item);
        return;
      }
      pending = item;
      const done = () => {
        if (pending !== item) return;
        for (let i = viewer.world.getItemCount() - 1; i >= 0; i--) {
          const other = viewer.world.getItemAt(i);
          if (other !== item) viewer.world.removeItem(other);
        }
        pending = null;
      };
      if (item.getFullyLoaded()) done();
      else item.addOnceHandler("fully-loaded-change", done);
    },
  });
}

// ----------------------------------------------------------------- frames

let frameTimer = 0;

// The axes (IndexZ, IndexC, IndexT, …) that vary across frames, with the
// stride that steps each one (large_image's IndexRange and IndexStride).
function frameAxes(meta) {
  const range = meta.IndexRange || {};
  const stride = meta.IndexStride || {};
  return Object.keys(range)
    .filter((k) => range[k] > 1 && stride[k] > 0)
    .map((k) => ({ key: k, name: k.slice(5), range: range[k], stride: stride[k] }));
}

function frameLabel(meta, f) {
  const fr = (meta.frames || [])[f] || {};
  const parts = [`${f + 1} of ${meta.frames.length}`];
  if (fr.Channel) parts.push(fr.Channel);
  for (const a of frameAxes(meta)) parts.push(`${a.name} ${(fr[a.key] ?? 0) + 1}/${a.range}`);
  return parts.join(" · ");
}

function setupFrames(meta) {
  const box = $("frame-control");
  const input = $("frame");
  box.hidden = !current.multiFrame;
  const axesBox = $("frame-axes");
  axesBox.replaceChildren();
  if (!current.multiFrame) return;
  input.max = String(meta.frames.length - 1);
  input.value = "0";
  $("frame-label").textContent = frameLabel(meta, 0);
  const axes = frameAxes(meta);
  // One slider per axis when frames vary along more than one.
  if (axes.length < 2) return;
  for (const a of axes) {
    const id = `axis-${a.name}`;
    const axis = el("input", { type: "range", id, min: 0, max: a.range - 1, step: 1, value: 0, "data-key": a.key });
    axis.addEventListener("input", () => onAxisInput(false));
    axis.addEventListener("change", () => onAxisInput(true));
    axesBox.append(el("span", { class: "axis" }, el("label", { for: id, text: axisName(a.name) }), axis));
  }
}

function axisName(n) {
  return { C: "Channel", Z: "Z plane", T: "Time", XY: "Position" }[n] || n;
}

/** Moves the frame slider to the frame the axis sliders point at. */
function onAxisInput(commit) {
  const meta = current.meta;
  let f = 0;
  for (const a of frameAxes(meta)) {
    const s = document.getElementById(`axis-${a.name}`);
    if (s) f += Number(s.value) * a.stride;
  }
  $("frame").value = String(Math.min(f, meta.frames.length - 1));
  onFrameInput(commit, true);
}

function onFrameInput(commit, fromAxis = false) {
  const f = Number($("frame").value);
  $("frame-label").textContent = frameLabel(current.meta, f);
  if (!fromAxis) {
    const fr = current.meta.frames[f] || {};
    for (const s of document.querySelectorAll("#frame-axes input")) s.value = String(fr[s.dataset.key] ?? 0);
  }
  // While dragging, wait for the pointer to rest so the frames passed
  // over are not all requested.
  clearTimeout(frameTimer);
  const apply = () => {
    if (f === current.frame) return;
    current.frame = f;
    replaceImage();
  };
  if (commit) apply();
  else frameTimer = setTimeout(apply, 150);
}

// ------------------------------------------------------------------ style

function setupStyle(meta) {
  const sel = $("style-band");
  const n = typeof meta.bandCount === "number" ? meta.bandCount : 0;
  const opts = [el("option", { value: "", text: "Default" })];
  for (let b = 1; b <= n; b++) opts.push(el("option", { value: String(b), text: `Band ${b}` }));
  sel.replaceChildren(...opts);
  $("style-json").value = "";
  $("style-status").textContent = "";
}

function styleFromForm() {
  const raw = $("style-json").value.trim();
  if (raw) {
    JSON.parse(raw); // a syntax error is reported before asking the server
    return raw;
  }
  const band = $("style-band").value;
  if (!band) return "";
  return JSON.stringify({ bands: [{ band: Number(band), palette: $("style-color").value }] });
}

/** Tries the style on one tile first, so a refused style shows the
 *  server's message and the image stays as it was. */
async function applyStyle(style) {
  const status = $("style-status");
  if (!current.meta) return;
  if (style && style !== current.style) {
    status.textContent = "Checking style…";
    const url = tileUrl(current.id, { ...tileOpts(), style }, 0, 0, 0);
    try {
      const res = await fetch(url, { credentials: "same-origin" });
      if (!res.ok) throw await errorFrom(res);
      rememberTile(url, await res.blob());
    } catch (err) {
      status.textContent = `The server refused this style: ${err.message}`;
      status.classList.add("error");
      return;
    }
  }
  status.classList.remove("error");
  status.textContent = style ? "Style applied." : "Default style.";
  if (style === current.style) return;
  current.style = style;
  replaceImage();
}

// ------------------------------------------------------------- metadata

function showMetadata(meta) {
  const facts = [
    ["Size", `${meta.sizeX} × ${meta.sizeY} px`],
    ["Tiles", `${meta.tileWidth} × ${meta.tileHeight} px, ${meta.levels} levels`],
    ["Magnification", meta.magnification ? `${meta.magnification}×` : "–"],
    ["Pixel size", meta.mm_x ? `${(meta.mm_x * 1000).toPrecision(4)} × ${(meta.mm_y * 1000).toPrecision(4)} µm` : "–"],
    ["Data", `${meta.dtype ?? "?"}, ${meta.bandCount ?? "?"} band${meta.bandCount === 1 ? "" : "s"}`],
  ];
  if (Array.isArray(meta.frames)) facts.push(["Frames", String(meta.frames.length)]);
  if (Array.isArray(meta.channels)) facts.push(["Channels", meta.channels.join(", ")]);
  $("meta-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("meta-json").textContent = JSON.stringify(meta, null, 2);
  $("meta-section").hidden = false;
}

async function showAssociated(id) {
  const box = $("assoc");
  box.replaceChildren();
  $("assoc-section").hidden = true;
  let keys;
  try {
    keys = await api(`item/${id}/tiles/images`);
  } catch {
    return; // the section stays hidden: nothing to show
  }
  if (current.id !== id || !keys.length) return;
  box.replaceChildren(
    ...keys.map((k) => {
      const src = `${API}/item/${id}/tiles/images/${encodeURIComponent(k)}`;
      return el(
        "figure",
        {},
        el("a", { href: src, target: "_blank", rel: "noopener" }, el("img", { src: `${src}?width=256`, alt: `${k} image`, loading: "lazy" })),
        el("figcaption", { text: k }),
      );
    }),
  );
  $("assoc-section").hidden = false;
}

// ------------------------------------------------------------------ cache

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

// ----------------------------------------------------------------- wiring

async function route() {
  const p = hashParams();
  const want = p.get("folder");
  if (shownFolder === null || (want && want !== shownFolder)) await showFolder(want);
  await openItem(p.get("item"));
}

function init() {
  $("frame").addEventListener("input", () => onFrameInput(false));
  $("frame").addEventListener("change", () => onFrameInput(true));
  $("style-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let style;
    try {
      style = styleFromForm();
    } catch (err) {
      $("style-status").textContent = `The style is not valid JSON: ${err.message}`;
      $("style-status").classList.add("error");
      return;
    }
    applyStyle(style);
  });
  $("style-reset").addEventListener("click", () => {
    $("style-band").value = "";
    $("style-json").value = "";
    applyStyle("");
  });
  $("cache-form").addEventListener("submit", (e) => {
    e.preventDefault();
    refreshCache();
  });
  $("cache-clear").addEventListener("click", clearCache);
  window.addEventListener("hashchange", route);
  route();
}

init();
