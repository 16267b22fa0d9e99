package girder

import (
	"context"

	"github.com/tileserver/tileserver/tilecache"
)

// TileCacheAdmin reports and clears the tile cache and the source cache in
// large_image's shape (girder_large_image/rest/large_image_resource.py), with our counters added.
type TileCacheAdmin struct {
	Tiles   *tilecache.Tiered      // nil when tile caching is off
	Sources *tilecache.SourceCache // nil when not shared with the server
}

// Info returns {"tilesource": {...}, "tileCache": {...}}: large_image's
// maxsize/used/items plus hit and miss counters.
func (a TileCacheAdmin) Info(ctx context.Context) map[string]any {
	out := map[string]any{}
	if a.Sources != nil {
		out["tilesource"] = a.Sources.Stats()
	}
	if a.Tiles != nil {
		st := a.Tiles.Stats()
		tc := map[string]any{
			"maxsize": st.Memory.MaxSize, "used": st.Memory.Used, "items": st.Memory.Items,
			"memory": st.Memory, "memcached": st.Memcached, "disk": st.Disk,
			"produced": st.Produced, "coalesced": st.Coalesced, "produceErrors": st.ProduceErrors,
			"abandoned": st.Abandoned, "inFlight": st.InFlight,
		}
		if servers := a.Tiles.ServerStats(ctx); servers != nil {
			var maxsize, used, items int64
			for _, s := range servers {
				maxsize += s.LimitMaxBytes
				used += s.Bytes
				items += s.CurrItems
			}
			if !st.Memory.Enabled {
				tc["maxsize"], tc["used"], tc["items"] = maxsize, used, items
			}
			tc["memcachedServers"] = servers
		}
		out["tileCache"] = tc
	}
	return out
}

// Clear empties the source cache and the in-process tile tiers; memcached
// is flushed only when includeMemcached is set, because flush_all empties
// whole servers that other replicas share.
func (a TileCacheAdmin) Clear(ctx context.Context, includeMemcached bool) error {
	if a.Sources != nil {
		a.Sources.Clear()
	}
	if a.Tiles != nil {
		return a.Tiles.Clear(ctx, includeMemcached)
	}
	return nil
}
