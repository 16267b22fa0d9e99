package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestSyncCollection: a remote collection holds exactly what was listed,
// under ids derived from its key and the items' locators, survives a
// re-open and a directory import, and goes away when no longer kept.
func TestSyncCollection(t *testing.T) {
	dir := t.TempDir()
	slides := filepath.Join(dir, "slides")
	write(t, filepath.Join(slides, "a.tif"), "II*\x00")
	s, err := Open(dir, slides)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	col := Collection{Key: "dicomweb:pacs", Name: "pacs"}
	folders := []RemoteFolder{{Key: "1.2", Name: "Study A", Created: day}, {Key: "1.3", Name: "1.3"}}
	items := []RemoteItem{
		{FolderKey: "1.2", Name: "HE", SourceName: "dicomweb", Remote: "r1", Version: "v1", Created: day},
		{FolderKey: "1.3", Name: "IHC", SourceName: "dicomweb", Remote: "r2", Version: "v1"},
	}
	st, err := s.SyncCollection(col, folders, items)
	if err != nil || st.Folders != 2 || st.Items != 2 || st.Removed != 0 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	colID := CollectionKeyID("dicomweb:pacs")
	fid := RemoteFolderID("dicomweb:pacs", "1.2")
	f, ok := s.Folder(fid)
	if !ok || f.ParentID != colID || f.ParentType != "collection" || f.BaseID() != colID || !f.Created.Equal(day) {
		t.Errorf("folder %+v", f)
	}
	it, ok := s.Item(RemoteID("r1"))
	if !ok || it.FolderID != fid || it.BaseID() != colID || it.Version != "v1" || it.Remote != "r1" {
		t.Errorf("item %+v", it)
	}
	if c := s.Collections(); len(c) != 1 || c[0].ID != colID || c[0].Name != "pacs" || !c[0].Updated.Equal(day) {
		t.Errorf("collections %+v", c)
	}
	if _, err := s.SyncCollection(col, folders[:1], items); err == nil {
		t.Error("item in an unlisted folder accepted")
	}

	// A directory import leaves the collection alone.
	if _, err := s.Import(context.Background(), ImportOptions{CanOpen: claimTIFF}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Folder(fid); !ok {
		t.Error("import removed a remote folder")
	}
	// Listing again without the second study removes it and its item.
	st, err = s.SyncCollection(col, folders[:1], items[:1])
	if err != nil || st.Removed != 1 {
		t.Fatalf("resync: %+v %v", st, err)
	}
	if _, ok := s.Item(RemoteID("r2")); ok {
		t.Error("unlisted item kept")
	}
	if _, ok := s.Folder(RemoteFolderID("dicomweb:pacs", "1.3")); ok {
		t.Error("unlisted folder kept")
	}
	s.Close()

	s, err = Open(dir, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Collection(colID); !ok {
		t.Fatal("collection lost on re-open")
	}
	if err := s.KeepCollections(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Collection(colID); ok || len(s.Collections()) != 0 {
		t.Error("collection kept after its source was removed")
	}
	if _, ok := s.Item(RemoteID("r1")); ok {
		t.Error("item of a removed collection kept")
	}
	if _, ok := s.Item(ID("item", "a.tif")); !ok {
		t.Error("slide item removed with the collection")
	}
}
