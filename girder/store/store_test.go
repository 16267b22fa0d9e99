package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// claimTIFF stands in for the pipeline's CanOpen: it claims files that start
// with a TIFF byte-order mark, so the store's own rules are tested in
// isolation (the HTTP tests run the real readers).
func claimTIFF(_ context.Context, p string) (string, error) {
	b := make([]byte, 4)
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Read(b); err != nil {
		return "", err
	}
	if string(b[:2]) == "II" || string(b[:2]) == "MM" {
		return "tiff", nil
	}
	return "", errors.New("not a TIFF")
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func setup(t *testing.T) (data, slides string) {
	t.Helper()
	base := t.TempDir()
	data, slides = filepath.Join(base, "data"), filepath.Join(base, "slides")
	for _, d := range []string{data, slides} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(slides, "a.tif"), "II*\x00aaaa")
	write(t, filepath.Join(slides, "sub", "b.svs"), "MM\x00*bbbbbbbb")
	write(t, filepath.Join(slides, "sub", "deeper", "c.tiff"), "II*\x00c")
	write(t, filepath.Join(slides, "sub", "notes.txt"), "hello")
	write(t, filepath.Join(slides, ".hidden", "d.tif"), "II*\x00d")
	return data, slides
}

func mustImport(t *testing.T, s *Store, sub string) ImportStats {
	t.Helper()
	st, err := s.Import(context.Background(), ImportOptions{Sub: sub, CanOpen: claimTIFF})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestImportMirrorsTreeWithStableIDs(t *testing.T) {
	data, slides := setup(t)
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	st := mustImport(t, s, "")
	if st.Items != 3 || st.Skipped != 1 || st.Folders != 3 {
		t.Fatalf("stats %+v, want 3 items, 1 skipped, 3 folders", st)
	}
	root, ok := s.Folder(ID("folder", ""))
	if !ok || root.Name != "slides" || root.ParentType != "collection" || root.ParentID != CollectionID {
		t.Fatalf("root folder %+v", root)
	}
	if root.Size != 8+12+5 {
		t.Errorf("root size %d, want 25", root.Size)
	}
	sub := s.Folders("folder", root.ID)
	if len(sub) != 1 || sub[0].Name != "sub" || sub[0].Size != 17 {
		t.Fatalf("children of root: %+v", sub)
	}
	items := s.Items(ItemQuery{FolderID: sub[0].ID})
	if len(items) != 1 || items[0].Name != "b.svs" || items[0].SourceName != "tiff" || items[0].Size != 12 {
		t.Fatalf("items of sub: %+v", items)
	}
	if got := s.Items(ItemQuery{Text: "TIF"}); len(got) != 2 {
		t.Errorf("text search TIF: %d items, want 2 (a.tif, c.tiff)", len(got))
	}
	for _, id := range []string{items[0].ID, items[0].FileID, root.ID, CollectionID} {
		if len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("id %q is not 24 hex", id)
		}
	}
	before := items[0]

	// Re-import and reopen: same ids and creation times.
	mustImport(t, s, "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, ok := s.Item(before.ID)
	if !ok || after.Path != before.Path || !after.Created.Equal(before.Created) || after.FileID != before.FileID {
		t.Fatalf("after reopen %+v, before %+v", after, before)
	}
	mustImport(t, s, "")
	if again, _ := s.Item(before.ID); !again.Created.Equal(before.Created) {
		t.Errorf("created changed on re-import: %v vs %v", again.Created, before.Created)
	}
}

func TestImportRemovesGoneFilesAndPartialScan(t *testing.T) {
	data, slides := setup(t)
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustImport(t, s, "")
	if err := os.RemoveAll(filepath.Join(slides, "sub", "deeper")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(slides, "sub", "e.tif"), "II*\x00eeeeeeeeeee")
	write(t, filepath.Join(slides, "z.tif"), "II*\x00z") // outside the partial scan
	st := mustImport(t, s, "sub")
	if st.Removed != 1 || st.Items != 2 {
		t.Fatalf("partial stats %+v, want 2 items (b, e) and 1 removed", st)
	}
	if _, ok := s.Item(ID("item", "sub/deeper/c.tiff")); ok {
		t.Error("removed file still has an item")
	}
	if _, ok := s.Folder(ID("folder", "sub/deeper")); ok {
		t.Error("removed directory still has a folder")
	}
	if _, ok := s.Item(ID("item", "z.tif")); ok {
		t.Error("partial scan imported a file outside its directory")
	}
	if _, ok := s.Item(ID("item", "a.tif")); !ok {
		t.Error("partial scan removed a file outside its directory")
	}
	root, _ := s.Folder(ID("folder", ""))
	if root.Size != 8+12+15 {
		t.Errorf("root size after partial scan %d, want 35", root.Size)
	}
	for _, bad := range []string{"../", "sub/../../x", "nope", "a.tif"} {
		if _, err := s.Import(context.Background(), ImportOptions{Sub: bad, CanOpen: claimTIFF}); !errors.Is(err, ErrBadImportPath) {
			t.Errorf("import %q: err %v, want ErrBadImportPath", bad, err)
		}
	}
}

func TestSymlinksOutsideRootAreRejected(t *testing.T) {
	data, slides := setup(t)
	outside := filepath.Join(filepath.Dir(slides), "secret.tif")
	write(t, outside, "II*\x00secret")
	if err := os.Symlink(outside, filepath.Join(slides, "escape.tif")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(slides), filepath.Join(slides, "updir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(slides, "a.tif"), filepath.Join(slides, "inside.tif")); err != nil {
		t.Fatal(err)
	}
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustImport(t, s, "")
	if _, ok := s.Item(ID("item", "escape.tif")); ok {
		t.Error("a link pointing outside the root was imported")
	}
	if got := s.Items(ItemQuery{Text: "secret"}); len(got) != 0 {
		t.Error("a file reached through a directory link was imported")
	}
	it, ok := s.Item(ID("item", "inside.tif"))
	if !ok {
		t.Fatal("a link inside the root was not imported")
	}
	real, _, err := s.Resolve(it.Path)
	if err != nil || filepath.Base(real) != "a.tif" {
		t.Errorf("resolve inside link: %q %v", real, err)
	}
	// A file replaced by an escaping link after import is refused on access.
	a, _ := s.Item(ID("item", "a.tif"))
	if err := os.Remove(filepath.Join(slides, "a.tif")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(slides, "a.tif")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Refresh(a); !errors.Is(err, ErrOutsideRoot) {
		t.Errorf("refresh of an escaping link: %v, want ErrOutsideRoot", err)
	}
	for _, bad := range []string{"../secret.tif", "/etc/passwd", ""} {
		if _, _, err := s.Resolve(bad); err == nil {
			t.Errorf("resolve %q succeeded", bad)
		}
	}
}

func TestRefreshTracksFileChanges(t *testing.T) {
	data, slides := setup(t)
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.freshFor = 0 // check the file on every refresh
	mustImport(t, s, "")
	it, _ := s.Item(ID("item", "a.tif"))
	same, _, err := s.Refresh(it)
	if err != nil || same.Version != it.Version {
		t.Fatalf("refresh of an untouched file: %v %q vs %q", err, same.Version, it.Version)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(slides, "a.tif"), later, later); err != nil {
		t.Fatal(err)
	}
	n, _, err := s.Refresh(it)
	if err != nil || n.Version == it.Version {
		t.Fatalf("refresh after touch: %v, version %q unchanged", err, n.Version)
	}
	if stored, _ := s.Item(it.ID); stored.Version != n.Version {
		t.Errorf("new version not stored: %q vs %q", stored.Version, n.Version)
	}
	if err := os.Remove(filepath.Join(slides, "a.tif")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Refresh(n); err == nil {
		t.Error("refresh of a deleted file succeeded")
	}
}

// A file checked less than freshFor ago is trusted without a stat; once
// the interval has passed the change is seen.
func TestRefreshTrustsARecentCheck(t *testing.T) {
	data, slides := setup(t)
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.freshFor = time.Hour
	mustImport(t, s, "")
	it, _ := s.Item(ID("item", "a.tif"))
	if _, _, err := s.Refresh(it); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(slides, "a.tif"), later, later); err != nil {
		t.Fatal(err)
	}
	same, real, err := s.Refresh(it)
	if err != nil || same.Version != it.Version || filepath.Base(real) != "a.tif" {
		t.Fatalf("refresh within the interval: %v, version %q (was %q), path %q", err, same.Version, it.Version, real)
	}
	s.freshFor = 0 // the interval has passed
	n, _, err := s.Refresh(it)
	if err != nil || n.Version == it.Version {
		t.Fatalf("refresh after the interval: %v, version %q unchanged", err, n.Version)
	}
}
