// The viewer page: folder/item browser with search, an OpenSeadragon viewer
// (magnification, scale bar, rotation, measuring, a second slide side by
// side), frame, channel and style controls, metadata, associated images and
// the cache panel (cache.js). The whole view lives in the URL hash (folder, item,
// centre, zoom, rotation, frame, style, second slide) so it can be shared.

import { $, api, el } from "./dom.js";
import { initCachePanel } from "./cache.js";
import { makeTileSource, tileUrl, errorFrom, rememberTile, fetchTile } from "./tiles.js";
import * as scale from "./measure.js";
import * as ch from "./channels.js";

function hashParams(hash = location.hash) {
  return new URLSearchParams(hash.replace(/^#/, ""));
}

/** A view from the URL: centre (image pixels), image zoom (CSS pixels per
 *  image pixel), rotation and flip; null when the link holds none. */
function viewFromParams(p) {
  const x = Number(p.get("x"));
  const y = Number(p.get("y"));
  const zoom = Number(p.get("zoom"));
  if (!p.has("x") || !p.has("y") || !(zoom > 0) || !isFinite(x) || !isFinite(y)) {
    return p.has("rot") ? { rot: Number(p.get("rot")) || 0, flip: p.get("flip") === "1" } : null;
  }
  return { x, y, zoom, rot: Number(p.get("rot")) || 0, flip: p.get("flip") === "1" };
}

function linkTo(folder, item) {
  const p = new URLSearchParams();
  if (folder) p.set("folder", folder);
  if (item) p.set("item", item);
  return `#${p}`;
}

// ---------------------------------------------------------------- browser

const folderCache = new Map(); // id → folder JSON
let shownFolder = null;
let listedItems = []; // the items on the left (folder or search results)

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
  $("search").value = "";
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
  renderItems(id, items);
}

/** A name a person can read: DICOMweb items imported without a name are
 *  called by their series UID. */
function displayName(it) {
  if (/^[0-9.]{16,}$/.test(it.name)) return `DICOM series …${it.name.slice(-8)}`;
  return it.name;
}

function renderItems(folderId, items) {
  listedItems = items;
  $("items").replaceChildren(
    ...items.map((it) => {
      // Every large image has a thumbnail, whether it has a file (a slide),
      // a DICOMweb series or the synthetic test source behind it.
      const hasImage = Boolean(it.largeImage);
      const thumb = hasImage
        ? el("img", {
            src: `/api/v1/item/${it._id}/tiles/thumbnail?width=160&height=160`,
            alt: "",
            width: 160,
            height: 160,
            loading: "lazy",
            decoding: "async",
            fetchpriority: "low",
          })
        : el("span", { class: "no-thumb", text: "no image" });
      if (hasImage) thumb.addEventListener("error", () => thumb.replaceWith(el("span", { class: "no-thumb", text: "no preview" })), { once: true });
      return el(
        "li",
        {},
        el("a", { class: "card", href: linkTo(folderId || it.folderId, it._id), "data-item": it._id, title: it.name }, thumb, el("span", { class: "name", text: displayName(it) })),
      );
    }),
  );
  markCurrentItem();
  fillCompareChoices();
}

/** Searches items by name (Girder's item?text=) and lists the matches. */
async function search(text) {
  const status = $("browser-status");
  text = text.trim();
  if (!text) {
    shownFolder = null;
    await showFolder(hashParams().get("folder"));
    return;
  }
  status.textContent = "Searching…";
  try {
    const items = await api(`item?text=${encodeURIComponent(text)}&limit=100`);
    $("folders").replaceChildren();
    renderItems(null, items);
    const one = items.length === 1;
    status.textContent = items.length ? `${items.length} item${one ? " matches" : "s match"} “${text}”.` : `No item matches “${text}”.`;
  } catch (err) {
    status.textContent = `Search failed: ${err.message}`;
  }
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

let OSDlib = null;
let viewer = null;
// ready is false from choosing an item until its metadata is applied:
// until then frame, style and meta are still the previous item's.
const current = { id: null, ready: true, meta: null, frame: 0, style: "", multiFrame: false, chans: null, chanStates: null };
// The tiled image replacing the one on screen (frame or style change).
let pending = null;
// When the current item's open began, for the time to a sharp view, and
// the milestones on the way (shown in data-timing for the browser test).
let openStarted = 0;
let timing = {};
function mark(name) {
  if (openStarted && !(name in timing)) timing[name] = Math.round(performance.now() - openStarted);
}

// The browser test and the console reach the viewers here.
window.tileViewer = { main: () => viewer, second: () => compare.viewer };

function tileOpts() {
  return { frame: current.frame, multiFrame: current.multiFrame, style: current.style };
}

/** OpenSeadragon settings tuned for the time to a sharp view: the level
 *  that fits is drawn as soon as it arrives (no blurry levels first, no
 *  blending), and failed tiles are retried. */
function viewerOptions(element, navigator) {
  const libBase = libUrl.replace(/[^/]*$/, "");
  return {
    element,
    prefixUrl: `${libBase}images/`,
    showNavigator: navigator,
    navigatorPosition: "BOTTOM_RIGHT",
    navigatorAutoFade: false,
    showRotationControl: false,
    showFullPageControl: true,
    maxZoomPixelRatio: 2,
    visibilityRatio: 1,
    constrainDuringPan: true,
    minZoomImageRatio: 0.9,
    animationTime: 0.5,
    springStiffness: 8,
    zoomPerScroll: 1.4,
    immediateRender: true,
    blendTime: 0,
    alwaysBlend: false,
    imageLoaderLimit: 8,
    tileRetryMax: 3,
    tileRetryDelay: 800,
    maxImageCacheCount: 600,
    crossOriginPolicy: false,
    ajaxWithCredentials: false,
    loadTilesWithAjax: false,
    gestureSettingsMouse: { clickToZoom: true, dblClickToZoom: false, flickEnabled: true },
    drawer: ["canvas", "html"],
  };
}

function createViewer(OSD) {
  const v = OSD(viewerOptions($("viewer"), true));
  // The page's overlays live inside the viewer's element, above its canvas.
  for (const id of ["scalebar", "measure", "measure-label", "tile-status"]) v.container.append($(id));
  v.addHandler("animation", onViewChange);
  v.addHandler("viewport-change", onViewChange);
  v.addHandler("open", onViewChange);
  v.addHandler("tile-load-failed", onTileFailed);
  v.addHandler("tile-loaded", onTileLoaded);
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
  const box = $("viewer");
  box.setAttribute("aria-busy", String(busy));
  if (!busy && openStarted) {
    // The time from choosing the slide to every tile of the view drawn.
    box.dataset.sharpMs = String(Math.round(performance.now() - openStarted));
    box.dataset.timing = JSON.stringify(timing);
    openStarted = 0;
  }
}

/** The first image's zoom in CSS pixels per image pixel. */
function imageZoom(v = viewer) {
  const img = v && v.world.getItemAt(0);
  return img ? img.viewportToImageZoom(v.viewport.getZoom(true)) : null;
}

function onViewChange() {
  if (!viewer || !current.meta || !viewer.world.getItemCount()) return;
  const zoom = imageZoom();
  const native = scale.nativeMagnification(current.meta);
  const pct = `${(zoom * 100).toFixed(zoom < 0.1 ? 1 : 0)}%`;
  const info = $("zoom-info");
  info.textContent = native ? `${scale.formatMagnification(native * zoom)} · ${pct}` : pct;
  info.dataset.magnification = native ? String(native * zoom) : "";
  // Powers the view cannot zoom out to (the whole slide is smaller) are off.
  const img = viewer.world.getItemAt(0);
  const minZoom = img.viewportToImageZoom(viewer.viewport.getMinZoom());
  for (const b of $("mag-buttons").querySelectorAll("button[data-mag]")) b.disabled = Number(b.dataset.mag) / native < minZoom * 0.999;
  const bar = scale.scaleBar(current.meta, zoom);
  $("scalebar-bar").style.width = `${bar.px.toFixed(1)}px`;
  $("scalebar-label").textContent = bar.label;
  $("scalebar").hidden = false;
  drawMeasure();
  syncFrom(viewer);
  saveUrlSoon();
}

function stageMessage(text) {
  const m = $("stage-message");
  m.textContent = text;
  m.hidden = !text;
}

/** Fetches the tiles the fitted view needs while the viewer library and
 *  the viewer get going: the deepest level that fits the viewer first
 *  (the sharp view), then the coarser ones the navigator and OpenSeadragon
 *  ask for. OpenSeadragon's own requests then come from the page's tile
 *  cache. */
function preloadFirstView(meta, id) {
  const box = $("viewer").getBoundingClientRect();
  const w = box.width || 800;
  const h = box.height || 600;
  const fit = Math.min(w / meta.sizeX, h / meta.sizeY) * (window.devicePixelRatio || 1);
  const top = meta.levels - 1;
  let z = top;
  while (z > 0 && 2 ** (z - 1 - top) >= fit) z--;
  const opts = tileOpts();
  let budget = 64;
  for (let level = z; level >= 0; level--) {
    const s = 2 ** (top - level);
    const nx = Math.ceil(meta.sizeX / s / meta.tileWidth);
    const ny = Math.ceil(meta.sizeY / s / meta.tileHeight);
    if (nx * ny > budget) continue;
    budget -= nx * ny;
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) fetchTile(tileUrl(id, opts, level, x, y)).catch(() => {});
  }
}

async function openItem(id, { view = null, frame = 0, style = "" } = {}) {
  if (id === current.id) return;
  current.id = id;
  current.ready = !id;
  markCurrentItem();
  clearMeasure();
  clearTileFailures();
  if (!id) {
    $("viewer-section").hidden = true;
    $("meta-section").hidden = true;
    $("assoc-section").hidden = true;
    stageMessage("Choose an image on the left.");
    saveUrlSoon();
    return;
  }
  openStarted = performance.now();
  timing = {};
  stageMessage("Loading…");
  let item, meta;
  try {
    [item, meta] = await Promise.all([api(`item/${id}`), api(`item/${id}/tiles`)]);
  } catch (err) {
    if (current.id !== id) return;
    $("viewer-section").hidden = true;
    $("meta-section").hidden = true;
    $("assoc-section").hidden = true;
    stageMessage(`This item cannot be shown: ${err.message}`);
    return;
  }
  if (current.id !== id) return; // another item was chosen meanwhile
  mark("metadata");
  current.ready = true;
  current.meta = meta;
  current.multiFrame = Array.isArray(meta.frames) && meta.frames.length > 1;
  current.frame = current.multiFrame ? Math.min(Math.max(0, frame | 0), meta.frames.length - 1) : 0;
  current.style = style;
  current.chans = ch.channelsOf(meta);
  $("item-title").textContent = displayName(item);
  $("item-title").title = item.name;
  $("zoom-info").textContent = "";
  $("viewer-section").hidden = false;
  setupMagnification(meta);
  if (current.chans) {
    await setupChannels(meta, id);
    if (current.id !== id) return;
    if (!style) current.style = ch.composeStyle(current.chans, current.chanStates);
  } else setupChannels(meta, id);
  preloadFirstView(meta, id);
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
  if (!OSD) {
    stageMessage("The viewer library (OpenSeadragon) is missing from this build: run `make web` and rebuild the server. Browsing, metadata and thumbnails still work.");
    $("viewer").hidden = true;
    return;
  }
  OSDlib = OSD;
  mark("library");
  stageMessage("");
  viewer ??= createViewer(OSD);
  $("viewer").setAttribute("aria-busy", "true");
  pending = null;
  // Each slide opens unrotated and unflipped unless its link says otherwise.
  delete $("viewer").dataset.item;
  viewer.addOnceHandler("open", () => {
    if (current.id !== id) return;
    mark("opened");
    applyView(viewer, view);
    // Which item the viewer shows, once it shows it.
    $("viewer").dataset.item = id;
  });
  viewer.open(makeTileSource(OSD, meta, id, tileOpts()));
}

/** Puts a viewer at a view from a link (or the fitted, unrotated view). */
function applyView(v, view) {
  const vp = v.viewport;
  vp.setFlip(Boolean(view && view.flip));
  vp.setRotation(view ? view.rot : 0, true);
  const img = v.world.getItemAt(0);
  if (view && view.zoom && img) {
    vp.zoomTo(img.imageToViewportZoom(view.zoom), null, true);
    vp.panTo(img.imageToViewportCoordinates(view.x, view.y), true);
  } else {
    vp.goHome(true);
  }
}

/** Swaps the image for another frame or style, keeping the viewport: the
 *  new image loads on top and the old one goes once the new one covers
 *  the view, so nothing flashes. A newer swap cancels an unfinished one. */
async function replaceImage() {
  saveUrlSoon();
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

// ----------------------------------------------------- magnification, rotation

function setupMagnification(meta) {
  const native = scale.nativeMagnification(meta);
  const box = $("mag-buttons");
  const buttons = [el("button", { type: "button", "data-fit": "", title: "Fit the slide in view (0)", text: "Fit" })];
  if (native) {
    scale.magnificationSteps.forEach((m, i) => {
      if (m > native * 1.001) return;
      buttons.push(el("button", { type: "button", "data-mag": m, title: `${m}× (${i + 1})`, text: `${m}×` }));
    });
  }
  box.replaceChildren(...buttons);
}

/** Zooms so the view shows the slide at objective power m. */
function zoomToMagnification(m) {
  const native = current.meta && scale.nativeMagnification(current.meta);
  const img = viewer && viewer.world.getItemAt(0);
  if (!native || !img || m > native * 1.001) return;
  viewer.viewport.zoomTo(img.imageToViewportZoom(m / native));
}

function rotate(deg) {
  if (!viewer) return;
  const vp = viewer.viewport;
  vp.setRotation(deg === 0 ? 0 : vp.getRotation() + deg);
}

// ---------------------------------------------------------------- deep links

let urlTimer = 0;

/** Writes the view into the address once the user rests: replaceState, so
 *  moving about adds no history entries (choosing an item or a folder
 *  does, through its link). */
function saveUrlSoon() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(saveUrl, 250);
}

function saveUrl() {
  // The address holds the link being followed until its item is set up
  // (or for good when it cannot be shown): writing it now would pair the
  // new item with the previous one's frame and style. A link to another
  // item not routed yet (its hashchange still queued) must not be
  // overwritten with the item shown.
  if (!current.ready || (hashParams().get("item") || null) !== current.id) return;
  const p = new URLSearchParams();
  const folderId = shownFolder || hashParams().get("folder");
  if (folderId) p.set("folder", folderId);
  if (current.id) {
    p.set("item", current.id);
    // Only once the viewer shows this item: until then it shows the last.
    const img = viewer && $("viewer").dataset.item === current.id && viewer.world.getItemAt(0);
    if (img) {
      const vp = viewer.viewport;
      const c = img.viewportToImageCoordinates(vp.getCenter(true));
      p.set("x", c.x.toFixed(1));
      p.set("y", c.y.toFixed(1));
      p.set("zoom", imageZoom().toPrecision(7));
      const rot = ((Math.round(vp.getRotation(true)) % 360) + 360) % 360;
      if (rot) p.set("rot", String(rot));
      if (vp.getFlip()) p.set("flip", "1");
    }
    if (current.multiFrame) p.set("frame", String(current.frame));
    if (current.style) p.set("style", current.style);
    if (compare.on && compare.id) {
      p.set("compare", compare.id);
      if (!$("sync").checked) p.set("sync", "0");
    }
  }
  const hash = `#${p}`;
  if (hash !== location.hash) history.replaceState(null, "", hash);
}

// --------------------------------------------------------------- side by side

const compare = { on: false, id: null, viewer: null, syncing: false };

function fillCompareChoices() {
  const sel = $("compare-item");
  const items = listedItems.filter((it) => it.largeImage);
  const keep = compare.id;
  sel.replaceChildren(...items.map((it) => el("option", { value: it._id, text: displayName(it) })));
  if (keep && !items.some((it) => it._id === keep)) sel.prepend(el("option", { value: keep, text: keep }));
  if (keep) sel.value = keep;
}

async function setCompare(on, id) {
  compare.on = on;
  $("compare").setAttribute("aria-pressed", String(on));
  $("compare-pick").hidden = !on;
  $("sync-label").hidden = !on;
  $("viewer2").hidden = !on;
  $("viewers").classList.toggle("split", on);
  if (!on) {
    compare.id = null;
    if (compare.viewer) compare.viewer.close();
    saveUrlSoon();
    return;
  }
  if (!id) {
    const other = listedItems.find((it) => it.largeImage && it._id !== current.id);
    id = (other || listedItems[0] || {})._id;
  }
  if (!id) return;
  compare.id = id;
  fillCompareChoices();
  const OSD = await loadOSD();
  if (!OSD) return;
  let meta;
  try {
    meta = await api(`item/${id}/tiles`);
  } catch (err) {
    $("viewer2").setAttribute("data-error", err.message);
    return;
  }
  if (compare.id !== id) return;
  if (!compare.viewer) {
    compare.viewer = OSD(viewerOptions($("viewer2"), false));
    compare.viewer.addHandler("viewport-change", () => syncFrom(compare.viewer));
  }
  compare.viewer.addOnceHandler("open", () => syncFrom(viewer, true));
  const multi = Array.isArray(meta.frames) && meta.frames.length > 1;
  // A multi-channel slide shows its channels composed, as when opened.
  const chans = ch.channelsOf(meta);
  const style = chans ? ch.composeStyle(chans, await seededStates(meta, id, chans, 0)) : "";
  if (compare.id !== id) return;
  compare.viewer.open(makeTileSource(OSD, meta, id, { frame: 0, multiFrame: multi, style }));
  saveUrlSoon();
}

/** Gives the other viewer the same centre, zoom and rotation in viewport
 *  coordinates (each slide's width is 1), so both show the same part of
 *  serial sections of the same tissue. */
function syncFrom(src, force = false) {
  if (!compare.on || !compare.viewer || compare.syncing || !viewer) return;
  if (!force && !$("sync").checked) return;
  const dst = src === viewer ? compare.viewer : viewer;
  if (!dst.world.getItemCount() || !src.world.getItemCount()) return;
  const same = (a, b) => Math.abs(a - b) < 1e-9;
  const [sc, dc] = [src.viewport.getCenter(true), dst.viewport.getCenter(true)];
  if (same(sc.x, dc.x) && same(sc.y, dc.y) && same(src.viewport.getZoom(true), dst.viewport.getZoom(true)) &&
    same(src.viewport.getRotation(true), dst.viewport.getRotation(true))) return;
  compare.syncing = true;
  try {
    dst.viewport.setRotation(src.viewport.getRotation(true), true);
    dst.viewport.zoomTo(src.viewport.getZoom(true), null, true);
    dst.viewport.panTo(src.viewport.getCenter(true), true);
  } finally {
    compare.syncing = false;
  }
  if (src !== viewer) saveUrlSoon();
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
  input.value = String(current.frame);
  $("frame-label").textContent = frameLabel(meta, current.frame);
  const axes = frameAxes(meta);
  // One slider per axis when frames vary along more than one; channels
  // have their own panel when they are composed.
  if (axes.length < 2) return;
  const fr = meta.frames[current.frame] || {};
  for (const a of axes) {
    if (a.name === "C" && current.chans && current.chans.kind === "frame") continue;
    const id = `axis-${a.name}`;
    const axis = el("input", { type: "range", id, min: 0, max: a.range - 1, step: 1, value: fr[a.key] ?? 0, "data-key": a.key });
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
  const fr = meta.frames[Number($("frame").value)] || {};
  for (const a of frameAxes(meta)) {
    const s = document.getElementById(`axis-${a.name}`);
    f += (s ? Number(s.value) : fr[a.key] || 0) * a.stride;
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
    // With channels composed, the frame is channel 0's of the plane and
    // the style picks the channels relative to it.
    const target = ch.baseFrame(current.meta, current.chans, f);
    if (target === current.frame) return;
    current.frame = target;
    replaceImage();
  };
  if (commit) apply();
  else frameTimer = setTimeout(apply, 150);
}

// --------------------------------------------------------------- channels

let channelTimer = 0;

/** Builds the channel panel: per channel a visibility toggle, a colour and
 *  min/max sliders. The windows are seeded from the bands route's
 *  statistics before the first tile is asked for, so the first view is
 *  the right one; a style from a deep link sets the panel instead when it
 *  has the panel's shape. */
async function setupChannels(meta, id) {
  const box = $("channels");
  const rows = $("channel-rows");
  rows.replaceChildren();
  const chans = current.chans;
  box.hidden = !chans;
  current.chanStates = null;
  if (!chans) return;
  const full = ch.dtypeRange(meta.dtype);
  const defaults = chans.list.map((c) => ({ visible: true, color: c.color, min: full ? full[0] : 0, max: full ? full[1] : 1 }));
  const linked = current.style && ch.parseStyle(chans, current.style, defaults);
  const states = linked || (await seededStates(meta, id, chans, current.frame));
  if (current.id !== id) return;
  current.chanStates = states;
  const st = states;
  const range = full || [Math.min(...st.map((s) => s.min)), Math.max(...st.map((s) => s.max))];
  chans.list.forEach((c, i) => rows.append(channelRow(c, i, range, full ? 1 : (range[1] - range[0]) / 1000)));
}

/** Every channel shown in its colour, windowed by its statistics. */
async function seededStates(meta, id, chans, frame) {
  const full = ch.dtypeRange(meta.dtype);
  const states = chans.list.map((c) => ({ visible: true, color: c.color, min: full ? full[0] : 0, max: full ? full[1] : 1 }));
  const base = ch.baseFrame(meta, chans, frame);
  await Promise.all(
    chans.list.map(async (c, i) => {
      const q = chans.kind === "frame" ? `frame=${base + c.delta}` : "";
      try {
        const b = (await api(`item/${id}/tiles/bands?${q}`))[String(c.band || 1)];
        // Girder writes an integer or float32 image's min and max as
        // strings (numpy scalars through str()), as large_image does.
        const lo = Number(b?.min);
        const hi = Number(b?.max);
        if (b && b.min !== null && b.max !== null && Number.isFinite(lo) && Number.isFinite(hi)) {
          states[i].min = lo;
          states[i].max = hi > lo ? hi : lo + 1;
        }
      } catch {
        // the full range stays
      }
    }),
  );
  return states;
}

function channelRow(c, i, range, step) {
  const st = current.chanStates[i];
  const vis = el("input", { type: "checkbox", id: `ch-${i}-on`, checked: st.visible });
  const color = el("input", { type: "color", id: `ch-${i}-color`, value: st.color, "aria-label": `${c.name} colour` });
  const slider = (k) =>
    el("input", { type: "range", id: `ch-${i}-${k}`, min: range[0], max: range[1], step, value: st[k], "aria-label": `${c.name} ${k}` });
  const min = slider("min");
  const max = slider("max");
  vis.addEventListener("change", () => {
    st.visible = vis.checked;
    channelsChanged();
  });
  color.addEventListener("input", () => {
    st.color = color.value;
    channelsChanged();
  });
  for (const [k, s] of [["min", min], ["max", max]]) {
    s.addEventListener("input", () => {
      st[k] = Number(s.value);
      showChannelRange(i);
      channelsChanged();
    });
  }
  return el(
    "div",
    { class: "channel", "data-channel": i },
    el("label", { class: "channel-name" }, vis, color, el("span", { text: c.name })),
    min,
    max,
    el("output", { id: `ch-${i}-range`, text: rangeText(st) }),
  );
}

function rangeText(st) {
  return `${Number(st.min.toPrecision(4))} – ${Number(st.max.toPrecision(4))}`;
}

function showChannelRange(i) {
  $(`ch-${i}-range`).textContent = rangeText(current.chanStates[i]);
}

/** Recomposes the style once the sliders rest. With no channel visible the
 *  view is black, as in OMERO.iviewer. */
function channelsChanged() {
  clearTimeout(channelTimer);
  channelTimer = setTimeout(() => {
    const states = current.chanStates;
    const style = states.some((s) => s.visible)
      ? ch.composeStyle(current.chans, states)
      : JSON.stringify({ bands: [{ band: 1, palette: "#000000", min: 0, max: 0 }] });
    applyStyle(style);
  }, 200);
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

// --------------------------------------------------------------- measuring

const SVG = "http://www.w3.org/2000/svg";
// mode: null, "ruler" or "area"; points in image pixels.
const measure = { mode: null, points: [], drawing: false, closed: false };

function setMeasureMode(mode) {
  measure.mode = measure.mode === mode ? null : mode;
  $("ruler").setAttribute("aria-pressed", String(measure.mode === "ruler"));
  $("area").setAttribute("aria-pressed", String(measure.mode === "area"));
  $("measure").classList.toggle("active", Boolean(measure.mode));
  clearMeasure();
}

function clearMeasure() {
  measure.points = [];
  measure.drawing = false;
  measure.closed = false;
  $("measure").replaceChildren();
  $("measure-label").hidden = true;
}

/** The image point under a pointer event on the overlay. */
function imagePointAt(e) {
  const img = viewer.world.getItemAt(0);
  const r = $("measure").getBoundingClientRect();
  const vpPoint = viewer.viewport.pointFromPixel(new OSDlib.Point(e.clientX - r.left, e.clientY - r.top), true);
  return img.viewportToImageCoordinates(vpPoint);
}

function onMeasureDown(e) {
  if (!measure.mode || !viewer || !viewer.world.getItemCount() || e.button !== 0) return;
  e.preventDefault();
  const p = imagePointAt(e);
  if (measure.mode === "ruler") {
    measure.points = [p, p];
    measure.drawing = true;
  } else if (e.detail < 2) {
    // The second press of a double click closes the polygon instead.
    if (measure.closed) clearMeasure();
    measure.points.push(p);
  }
  drawMeasure();
}

function onMeasureMove(e) {
  if (measure.mode !== "ruler" || !measure.drawing) return;
  measure.points[1] = imagePointAt(e);
  drawMeasure();
}

function onMeasureUp() {
  measure.drawing = false;
}

function onMeasureDblClick(e) {
  if (measure.mode !== "area") return;
  e.preventDefault();
  measure.closed = measure.points.length >= 3;
  drawMeasure();
}

/** Redraws the measurement in screen space (after every view change) and
 *  its label. */
function drawMeasure() {
  const svg = $("measure");
  const pts = measure.points;
  if (!viewer || !pts.length || !viewer.world.getItemCount()) {
    svg.replaceChildren();
    return;
  }
  const img = viewer.world.getItemAt(0);
  const xy = pts.map((p) => viewer.viewport.pixelFromPoint(img.imageToViewportCoordinates(p.x, p.y), true));
  const shape = document.createElementNS(SVG, measure.mode === "ruler" ? "polyline" : measure.closed ? "polygon" : "polyline");
  shape.setAttribute("points", xy.map((p) => `${p.x},${p.y}`).join(" "));
  svg.replaceChildren(shape);
  const label = $("measure-label");
  if (measure.mode === "ruler" && pts.length === 2) {
    label.textContent = `Length ${scale.describeLength(current.meta, pts[0], pts[1])}`;
  } else if (measure.mode === "area" && measure.closed) {
    label.textContent = `Area ${scale.describeArea(current.meta, pts)}`;
  } else if (measure.mode === "area") {
    label.textContent = "Click the corners; double-click to close.";
  }
  label.hidden = false;
}

// ------------------------------------------------------------ failed tiles

// url → {level, x, y, message, final}
const failures = new Map();

function onTileFailed(e) {
  const url = e.tile.getUrl();
  failures.set(url, { tile: e.tile, message: String(e.message || "").replace(/^Tile \S+: /, ""), final: e.maxReached });
  showTileFailures();
}

function onTileLoaded(e) {
  mark("first tile");
  if (failures.delete(e.tile.getUrl())) showTileFailures();
}

function clearTileFailures() {
  failures.clear();
  showTileFailures();
}

/** Says which tiles are missing and why: a failed tile is retried a few
 *  times, then offered for another try, never left blurry silently. */
function showTileFailures() {
  const box = $("tile-status");
  if (!failures.size) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const all = [...failures.values()];
  const waiting = all.filter((f) => !f.final).length;
  const n = all.length;
  const text = `${n} tile${n === 1 ? "" : "s"} failed: ${all[0].message}. ${waiting ? "Retrying…" : "Not loaded."}`;
  const kids = [el("span", { text })];
  if (!waiting) {
    const retry = el("button", { type: "button", id: "tile-retry", text: "Retry" });
    retry.addEventListener("click", retryFailedTiles);
    kids.push(retry);
  }
  box.replaceChildren(...kids);
  box.classList.toggle("error", !waiting);
  box.hidden = false;
}

function retryFailedTiles() {
  for (const f of failures.values()) {
    f.tile.exists = true;
    f.final = false;
  }
  showTileFailures();
  for (let i = 0; i < viewer.world.getItemCount(); i++) viewer.world.getItemAt(i).redraw?.();
  viewer.forceRedraw();
  viewer.viewport.applyConstraints();
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
      const src = `/api/v1/item/${id}/tiles/images/${encodeURIComponent(k)}`;
      return el(
        "figure",
        {},
        el("a", { href: src, target: "_blank", rel: "noopener" }, el("img", { src: `${src}?width=256`, alt: `${k} image`, loading: "lazy", fetchpriority: "low" })),
        el("figcaption", { text: k }),
      );
    }),
  );
  $("assoc-section").hidden = false;
}

// ----------------------------------------------------------------- wiring

async function route(hash = location.hash) {
  const p = hashParams(hash);
  const want = p.get("folder");
  const id = p.get("item");
  // The folder listing and the item open side by side: a shared link
  // shows its slide without waiting for the browser on the left.
  await Promise.all([
    shownFolder === null || (want && want !== shownFolder) ? showFolder(want) : null,
    id !== current.id ? openItem(id, { view: viewFromParams(p), frame: Number(p.get("frame")) || 0, style: p.get("style") || "" }) : null,
  ]);
  const cmp = p.get("compare");
  if (id && cmp && (cmp !== compare.id || !compare.on)) {
    $("sync").checked = p.get("sync") !== "0";
    setCompare(true, cmp);
  }
}

function toggleHelp() {
  const d = $("help");
  if (d.open) d.close();
  else d.showModal();
}

/** The page's keys; the viewer's own (pan, zoom, 0, r, f) stay with it. */
function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  if (e.key === "?") {
    e.preventDefault();
    toggleHelp();
    return;
  }
  if (!current.meta || $("help").open) return;
  const inViewer = t && t.closest && t.closest("#viewer");
  if (/^[1-8]$/.test(e.key)) {
    const native = scale.nativeMagnification(current.meta);
    zoomToMagnification(Math.min(scale.magnificationSteps[Number(e.key) - 1], native || 0));
  } else if (e.key === "m" || e.key === "M") setMeasureMode("ruler");
  else if (e.key === "p" || e.key === "P") setMeasureMode("area");
  else if (e.key === "c" || e.key === "C") setCompare(!compare.on);
  else if (e.key === "Escape" && measure.mode) setMeasureMode(measure.mode);
  else if (!inViewer && viewer && (e.key === "r" || e.key === "R")) rotate(e.key === "r" ? 90 : -90);
  else if (!inViewer && viewer && e.key === "0") viewer.viewport.goHome();
  else return;
  e.preventDefault();
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
    applyStyle(current.chans && current.chanStates ? ch.composeStyle(current.chans, current.chanStates) : "");
  });
  $("mag-buttons").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b || !viewer) return;
    if ("fit" in b.dataset) viewer.viewport.goHome();
    else zoomToMagnification(Number(b.dataset.mag));
  });
  $("rotate-left").addEventListener("click", () => rotate(-90));
  $("rotate-right").addEventListener("click", () => rotate(90));
  $("rotate-reset").addEventListener("click", () => rotate(0));
  $("ruler").addEventListener("click", () => setMeasureMode("ruler"));
  $("area").addEventListener("click", () => setMeasureMode("area"));
  const svg = $("measure");
  svg.addEventListener("mousedown", onMeasureDown);
  svg.addEventListener("mousemove", onMeasureMove);
  window.addEventListener("mouseup", onMeasureUp);
  svg.addEventListener("dblclick", onMeasureDblClick);
  $("compare").addEventListener("click", () => setCompare(!compare.on));
  $("compare-item").addEventListener("change", (e) => setCompare(true, e.target.value));
  $("sync").addEventListener("change", () => {
    if ($("sync").checked) syncFrom(viewer);
    saveUrlSoon();
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("search").value);
  });
  $("help-open").addEventListener("click", toggleHelp);
  document.addEventListener("keydown", onKey);
  initCachePanel();
  // The viewer library loads while the folder and the first metadata do.
  loadOSD().catch(() => {});
  // The link followed, not whatever the address holds when the event is
  // handled.
  window.addEventListener("hashchange", (e) => route(new URL(e.newURL).hash));
  route();
}

init();
