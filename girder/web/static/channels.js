// Fluorescence channels as OMERO.iviewer shows them: per channel a
// visibility, a colour and a min/max window, composed into large_image's
// style JSON (one band per visible channel, palette from black to the
// colour, composite lighten), so the server renders and caches each
// combination.

const defaultColors = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff", "#ffffff"];

// Well-known fluorophores get their usual colour.
const namedColors = [
  [/dapi|hoechst|blue/i, "#0000ff"],
  [/fitc|gfp|alexa ?488|green/i, "#00ff00"],
  [/cy3|tritc|alexa ?555|alexa ?568|red/i, "#ff0000"],
  [/cy5|alexa ?647|far.?red/i, "#ff00ff"],
];

/**
 * The channels of an image, or null when it has none to compose: frames
 * along IndexC (OME-TIFF and the other multi-plane formats), or more than
 * four bands in one frame. Each channel has the framedelta (from the frame
 * of channel 0) or the band that selects it.
 */
export function channelsOf(meta) {
  const names = Array.isArray(meta.channels) ? meta.channels : [];
  const range = (meta.IndexRange || {}).IndexC || 0;
  const stride = (meta.IndexStride || {}).IndexC || 0;
  const make = (i, sel) => ({ index: i, name: names[i] || `Channel ${i + 1}`, ...sel });
  let out = null;
  if (range > 1 && stride > 0 && Array.isArray(meta.frames)) {
    out = { kind: "frame", stride, list: Array.from({ length: range }, (_, c) => make(c, { delta: c * stride })) };
  } else if (!Array.isArray(meta.frames) && meta.bandCount > 4) {
    out = { kind: "band", stride: 0, list: Array.from({ length: meta.bandCount }, (_, b) => make(b, { band: b + 1 })) };
  }
  if (out) assignColors(out.list);
  return out;
}

/** Named fluorophores get their usual colour, the others the unused
 *  colours in order, so no two of the first seven channels look alike. */
function assignColors(list) {
  const used = new Set();
  for (const c of list) {
    const named = namedColors.find(([re]) => re.test(c.name));
    if (named && !used.has(named[1])) {
      c.color = named[1];
      used.add(c.color);
    }
  }
  let next = 0;
  for (const c of list) {
    if (c.color) continue;
    const free = defaultColors.filter((col) => !used.has(col));
    c.color = free.length ? free[0] : defaultColors[next++ % defaultColors.length];
    used.add(c.color);
  }
}

/** The slider range of a dtype; null for float data (use the statistics). */
export function dtypeRange(dtype) {
  const m = /^(u?)int(8|16|32)$/.exec(dtype || "");
  if (!m) return null;
  const bits = Number(m[2]);
  return m[1] ? [0, 2 ** bits - 1] : [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1];
}

/** The frame of channel 0 in the plane (Z, T, …) of frame f. */
export function baseFrame(meta, chans, f) {
  if (!chans || chans.kind !== "frame") return f;
  const fr = (meta.frames || [])[f] || {};
  return f - (fr.IndexC || 0) * chans.stride;
}

/** Composes the style JSON of the channel states. */
export function composeStyle(chans, states) {
  const bands = [];
  chans.list.forEach((c, i) => {
    const s = states[i];
    if (!s.visible) return;
    const b = chans.kind === "frame" ? (c.delta ? { framedelta: c.delta } : {}) : { band: c.band };
    bands.push({ ...b, palette: s.color, min: s.min, max: s.max, composite: "lighten" });
  });
  return JSON.stringify({ bands });
}

/** Reads channel states back from a style composed by composeStyle (a
 *  deep link); null when the style has another shape. */
export function parseStyle(chans, style, defaults) {
  let obj;
  try {
    obj = JSON.parse(style);
  } catch {
    return null;
  }
  if (!obj || !Array.isArray(obj.bands) || !obj.bands.length) return null;
  const states = defaults.map((d) => ({ ...d, visible: false }));
  for (const b of obj.bands) {
    const i = chans.list.findIndex((c) => (chans.kind === "frame" ? (b.framedelta || 0) === c.delta && b.frame === undefined : b.band === c.band));
    if (i < 0 || typeof b.palette !== "string" || typeof b.min !== "number" || typeof b.max !== "number") return null;
    states[i] = { visible: true, color: b.palette, min: b.min, max: b.max };
  }
  return states;
}
