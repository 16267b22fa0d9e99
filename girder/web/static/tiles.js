// Tile URLs, the OpenSeadragon tile source over large_image's zxy/fzxy
// routes, and the page-wide tile cache that guarantees no tile URL is
// downloaded twice by this page (the main viewer and the navigator each
// have their own OpenSeadragon cache, so they would otherwise both fetch).

const API = "/api/v1";

/** Builds a tile URL; multi-frame items always use fzxy so frame 0 and
 *  frame 1 URLs have the same shape. */
export function tileUrl(itemId, { frame, multiFrame, style }, z, x, y) {
  let url = multiFrame
    ? `${API}/item/${itemId}/tiles/fzxy/${frame}/${z}/${x}/${y}`
    : `${API}/item/${itemId}/tiles/zxy/${z}/${x}/${y}`;
  if (style) url += `?style=${encodeURIComponent(style)}`;
  return url;
}

/** An HTTP failure carrying the server's message (Girder's JSON body). */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Reads Girder's {"message": ...} error body, or falls back to the status. */
export async function errorFrom(res) {
  let message = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && typeof body.message === "string") message = body.message;
  } catch {
    // not JSON: keep the status text
  }
  return new HttpError(res.status, message);
}

// url → {promise, size}; Map order is recency (oldest first).
const blobs = new Map();
const maxBytes = 96 * 1024 * 1024;
let bytes = 0;

/** Fetches a tile once; later calls for the same URL share the result. A
 *  failed fetch is forgotten so a retry asks the server again. */
export function fetchTile(url) {
  const hit = blobs.get(url);
  if (hit) {
    blobs.delete(url);
    blobs.set(url, hit);
    return hit.promise;
  }
  const entry = { size: 0, promise: null };
  // Tiles go before thumbnails and associated images (which ask for low
  // priority) in the browser's six connections.
  entry.promise = fetch(url, { credentials: "same-origin", priority: "high" })
    .then(async (res) => {
      if (!res.ok) throw await errorFrom(res);
      const blob = await res.blob();
      entry.size = blob.size;
      bytes += blob.size;
      trim();
      return blob;
    })
    .catch((err) => {
      if (blobs.get(url) === entry) blobs.delete(url);
      throw err;
    });
  blobs.set(url, entry);
  return entry.promise;
}

/** Puts an already downloaded tile into the cache (the style probe). */
export function rememberTile(url, blob) {
  if (blobs.has(url)) return;
  bytes += blob.size;
  blobs.set(url, { size: blob.size, promise: Promise.resolve(blob) });
  trim();
}

function trim() {
  for (const [url, e] of blobs) {
    if (bytes <= maxBytes) break;
    if (!e.size) continue; // still downloading
    blobs.delete(url);
    bytes -= e.size;
  }
}

/**
 * Makes an OpenSeadragon tile source for a large_image item.
 *
 * large_image level z covers the image at scale 2^(z - (levels-1)); OSD
 * level L covers it at 2^(L - maxLevel) with maxLevel = ceil(log2(max
 * side)). So L = z + offset with offset = maxLevel - (levels-1), and the
 * source's minLevel is the offset (z = 0, the level that fits one tile).
 * Edge tiles come back full size; OSD crops them with the tile's source
 * bounds, so no edge=crop re-encoding is needed.
 */
export function makeTileSource(OSD, meta, itemId, opts) {
  const maxLevel = Math.max(0, Math.ceil(Math.log2(Math.max(meta.sizeX, meta.sizeY))));
  const offset = Math.max(0, maxLevel - (meta.levels - 1));
  const ts = new OSD.TileSource({
    width: meta.sizeX,
    height: meta.sizeY,
    tileWidth: meta.tileWidth,
    tileHeight: meta.tileHeight,
    tileOverlap: 0,
    minLevel: offset,
    maxLevel,
  });
  ts.getTileUrl = (level, x, y) => tileUrl(itemId, opts, level - offset, x, y);
  ts.downloadTileStart = (job) => {
    fetchTile(job.src).then(
      (blob) => job.finish(blob, null, "rasterBlob"),
      (err) => job.fail(`Tile ${job.src}: ${err.message}`, null),
    );
  };
  // Shared downloads are never cancelled: another viewer may be waiting on
  // the same one, and a finished tile is kept for the next request anyway.
  ts.downloadTileAbort = () => {};
  ts.levelOffset = offset;
  return ts;
}
