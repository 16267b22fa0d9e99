// Physical scale: the slide's native magnification, the scale bar and the
// lengths and areas the measuring tools report. Pure functions of the
// tiles metadata and the image zoom (CSS pixels per image pixel).

/** The objective power of full resolution: large_image's magnification,
 *  or 0.01 / mm_x when only the pixel size is known (large_image's rule of
 *  10 µm per pixel at 1×); null when neither is known. */
export function nativeMagnification(meta) {
  if (meta.magnification > 0) return meta.magnification;
  if (meta.mm_x > 0) return 0.01 / meta.mm_x;
  return null;
}

/** The objective powers offered as buttons, up to the native power. */
export const magnificationSteps = [1.25, 2.5, 5, 10, 20, 40, 60, 80];

export function formatMagnification(m) {
  return `${m < 10 ? m.toFixed(m < 2 ? 2 : 1) : m.toFixed(0)}×`;
}

/** Formats a length in millimetres as µm or mm with three significant digits. */
export function formatLength(mm) {
  if (mm < 1) return `${Number((mm * 1000).toPrecision(3))} µm`;
  return `${Number(mm.toPrecision(3))} mm`;
}

/** Formats an area in square millimetres as µm² or mm². */
export function formatArea(mm2) {
  if (mm2 < 0.01) return `${Number((mm2 * 1e6).toPrecision(3))} µm²`;
  return `${Number(mm2.toPrecision(3))} mm²`;
}

/**
 * The scale bar for an image zoom: the round length (1, 2 or 5 × 10^k µm,
 * or image pixels when the slide has no physical size) whose bar is
 * closest to 100 CSS pixels, never under 40.
 */
export function scaleBar(meta, imageZoom) {
  const physical = meta.mm_x > 0;
  // Units per CSS pixel: µm, or image pixels.
  const perPx = physical ? (meta.mm_x * 1000) / imageZoom : 1 / imageZoom;
  let best = null;
  const k0 = Math.floor(Math.log10(perPx * 100));
  for (let k = k0 - 1; k <= k0 + 1; k++) {
    for (const n of [1, 2, 5]) {
      const len = n * 10 ** k;
      if (!physical && len < 1) continue;
      const px = len / perPx;
      if (px < 40) continue;
      if (!best || Math.abs(px - 100) < Math.abs(best.px - 100)) best = { len, px };
    }
  }
  if (!best) best = { len: 1, px: 1 / perPx };
  const len = Number(best.len.toPrecision(3));
  const label = physical ? formatLength(len / 1000) : `${len} px`;
  return { px: best.px, label, units: physical ? len : null };
}

/** The length in mm (or image pixels without a physical size) between two
 *  image points. */
export function lengthBetween(meta, a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  if (meta.mm_x > 0) return { mm: Math.hypot(dx * meta.mm_x, dy * (meta.mm_y || meta.mm_x)) };
  return { px: Math.hypot(dx, dy) };
}

/** The area in mm² (or square image pixels) of a polygon of image points. */
export function polygonArea(meta, pts) {
  let s = 0;
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i];
    const q = pts[(i + 1) % pts.length];
    s += p.x * q.y - q.x * p.y;
  }
  const px2 = Math.abs(s) / 2;
  if (meta.mm_x > 0) return { mm2: px2 * meta.mm_x * (meta.mm_y || meta.mm_x) };
  return { px2 };
}

export function describeLength(meta, a, b) {
  const l = lengthBetween(meta, a, b);
  return l.mm !== undefined ? formatLength(l.mm) : `${Number(l.px.toPrecision(4))} px`;
}

export function describeArea(meta, pts) {
  const a = polygonArea(meta, pts);
  return a.mm2 !== undefined ? formatArea(a.mm2) : `${Number(a.px2.toPrecision(4))} px²`;
}
