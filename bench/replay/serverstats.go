package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/tileserver/tileserver/bench/trace"
)

// StatsPath is where our server (and Girder's large_image) report cache
// statistics.
const StatsPath = "/api/v1/large_image/cache"

// FetchStats reads a cache statistics document and flattens its numeric
// leaves to dotted keys ("tileCache.used"), so that two snapshots can be
// subtracted without knowing the document's exact shape.
func FetchStats(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	var doc any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	out := map[string]float64{}
	flatten("", doc, out)
	return out, nil
}

func flatten(prefix string, v any, out map[string]float64) {
	switch x := v.(type) {
	case float64:
		out[prefix] = x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x[k], out)
		}
	}
}

// FetchSlide reads tile metadata (GET .../tiles) and returns it as a trace
// slide with the given id.
func FetchSlide(ctx context.Context, client *http.Client, url, id string) (trace.Slide, error) {
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return trace.Slide{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return trace.Slide{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return trace.Slide{}, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	s := trace.Slide{}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return trace.Slide{}, fmt.Errorf("%s: %w", url, err)
	}
	s.ID = id
	return s, s.Validate()
}
