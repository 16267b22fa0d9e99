package store

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// dirObjects is a slide root in "object storage" backed by a local
// directory: keys are slash-separated relative paths, versions the files'
// size and time, Path the file itself (so claimTIFF reads it).
type dirObjects struct {
	root  string
	stats int
}

func (d *dirObjects) Name() string { return filepath.Base(d.root) }

func (d *dirObjects) info(key string, fi os.FileInfo) ObjectInfo {
	return ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime().UTC(),
		Version: fmt.Sprintf("etag-%d-%d", fi.Size(), fi.ModTime().UnixNano())}
}

func (d *dirObjects) List(context.Context) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.root, p)
		out = append(out, d.info(filepath.ToSlash(rel), fi))
		return nil
	})
	return out, err
}

func (d *dirObjects) Stat(_ context.Context, key string) (ObjectInfo, error) {
	d.stats++
	fi, err := os.Stat(d.Path(key))
	if err != nil {
		return ObjectInfo{}, err
	}
	return d.info(key, fi), nil
}

func (d *dirObjects) Path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// SeriesUID treats files named series-*.tif in one folder as one series.
func (d *dirObjects) SeriesUID(_ context.Context, o ObjectInfo) string {
	if strings.HasPrefix(filepath.Base(o.Key), "series-") {
		return "1.2.3"
	}
	return ""
}

func claimTIFFOrSeries(ctx context.Context, p string) (string, error) {
	src, err := claimTIFF(ctx, p)
	if err == nil && strings.HasPrefix(filepath.Base(p), "series-") {
		return dicomSource, nil
	}
	return src, err
}

// TestObjectsImport: a slide root in object storage gives the same folder
// and item ids, names and parents as the same tree on disk; a DICOM series
// is one item; a replaced object gets a new version once its freshness
// lapses; a removed one leaves with the next import.
func TestObjectsImport(t *testing.T) {
	_, slides := setup(t)
	disk, err := Open(t.TempDir(), slides)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	if _, err := disk.Import(context.Background(), ImportOptions{CanOpen: claimTIFF}); err != nil {
		t.Fatal(err)
	}
	objs := &dirObjects{root: slides}
	s, err := OpenObjects(t.TempDir(), objs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Import(context.Background(), ImportOptions{CanOpen: claimTIFF})
	if err != nil {
		t.Fatal(err)
	}
	if st.Items != 3 || st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
	describe := func(s *Store) string {
		var lines []string
		for _, f := range s.AllFolders() {
			if f.Path != "" {
				lines = append(lines, fmt.Sprintf("folder %s %s %s %s %d", f.ID, f.Name, f.ParentID, f.ParentType, f.Size))
			}
		}
		for _, it := range s.Items(ItemQuery{}) {
			fs := s.ItemFiles(it.ID)
			lines = append(lines, fmt.Sprintf("item %s %s %s %s %d %s %d", it.ID, it.Name, it.FolderID, it.Path, it.Size, it.FileID, len(fs)))
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	if a, b := describe(disk), describe(s); a != b || a == "" {
		t.Errorf("records differ:\ndisk:\n%s\nobjects:\n%s", a, b)
	}

	// A series of two objects is one item, identified by its first key.
	write(t, filepath.Join(slides, "wsi", "series-b.tif"), "II*\x00bb")
	write(t, filepath.Join(slides, "wsi", "series-a.tif"), "II*\x00a")
	if _, err := s.Import(context.Background(), ImportOptions{CanOpen: claimTIFFOrSeries}); err != nil {
		t.Fatal(err)
	}
	it, ok := s.Item(ID("item", "wsi/series-a.tif"))
	if !ok || len(it.Files) != 2 || it.Files[1] != "wsi/series-b.tif" || it.Size != 11 || it.SourceName != dicomSource {
		t.Fatalf("series item %+v", it)
	}
	if _, ok := s.Item(ID("item", "wsi/series-b.tif")); ok {
		t.Error("second instance became an item")
	}
	n, paths, err := s.RefreshAll(it)
	if err != nil || len(paths) != 2 || paths[0] != filepath.Join(slides, "wsi", "series-a.tif") || n.Version != it.Version {
		t.Fatalf("refresh: %v %v %+v", paths, err, n)
	}

	// Freshness: checked at most once per FreshFor, then the new version.
	a, _ := s.Item(ID("item", "a.tif"))
	if _, _, err := s.RefreshAll(a); err != nil {
		t.Fatal(err)
	}
	before := objs.stats
	write(t, filepath.Join(slides, "a.tif"), "II*\x00replaced")
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(slides, "a.tif"), later, later)
	if n, _, _ := s.RefreshAll(a); n.Version != a.Version || objs.stats != before {
		t.Error("object checked again within FreshFor")
	}
	s.freshFor = 0
	n, _, err = s.RefreshAll(a)
	if err != nil || n.Version == a.Version || n.Size != 12 {
		t.Errorf("replaced object: %+v %v", n, err)
	}
	if got, _ := s.Item(a.ID); got.Version != n.Version {
		t.Error("new version not stored")
	}

	// Removed objects leave with the next import; Resolve refuses.
	os.Remove(filepath.Join(slides, "a.tif"))
	if _, _, err := s.RefreshAll(n); err == nil {
		t.Error("refresh of a removed object succeeded")
	}
	if _, err := s.Import(context.Background(), ImportOptions{CanOpen: claimTIFFOrSeries}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Item(a.ID); ok {
		t.Error("removed object kept")
	}
	if _, _, err := s.Resolve("sub/b.svs"); err != ErrNotLocal {
		t.Errorf("resolve: %v", err)
	}
}
