package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilesource/dicom"
)

var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

// claimReal opens DICOM files with the real DICOM reader and TIFFs with
// claimTIFF, as the pipeline's CanOpen would.
func claimReal(ctx context.Context, p string) (string, error) {
	if name, err := claimTIFF(ctx, p); err == nil {
		return name, nil
	}
	src, err := dicom.Open(p)
	if err != nil {
		return "", err
	}
	defer src.Close()
	return src.Info().SourceName, nil
}

func copyTestdata(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, src))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dst, string(b))
}

func TestImportGroupsDICOMSeries(t *testing.T) {
	data, slides := setup(t)
	copyTestdata(t, "openslide-python/boxes_0.dcm", filepath.Join(slides, "series", "boxes_0.dcm"))
	copyTestdata(t, "openslide-python/boxes_1.dcm", filepath.Join(slides, "series", "boxes_1.dcm"))
	copyTestdata(t, "wsi-to-dicom-converter/jpeg.dicom", filepath.Join(slides, "series", "other.dicom"))
	copyTestdata(t, "libvips/dicom_test_image.dcm", filepath.Join(slides, "nm", "nm.dcm"))
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	st, err := s.Import(context.Background(), ImportOptions{CanOpen: claimReal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// 3 TIFFs, the two-file series and the one-file series; notes.txt
	// and the nuclear medicine image are skipped.
	if st.Items != 5 || st.Skipped != 2 {
		t.Fatalf("stats %+v, want 5 items and 2 skipped", st)
	}
	if n := strings.Count(logBuf.String(), "nm/nm.dcm"); n != 1 ||
		!strings.Contains(logBuf.String(), "not a whole-slide image") {
		t.Errorf("nuclear medicine file logged %d times:\n%s", n, logBuf.String())
	}

	items := s.Items(ItemQuery{FolderID: ID("folder", "series")})
	if len(items) != 2 {
		t.Fatalf("items of series/: %+v", items)
	}
	boxes, other := items[0], items[1]
	fi0, _ := os.Stat(filepath.Join(slides, "series", "boxes_0.dcm"))
	fi1, _ := os.Stat(filepath.Join(slides, "series", "boxes_1.dcm"))
	if boxes.Name != "boxes_0.dcm" || boxes.ID != ID("item", "series/boxes_0.dcm") || boxes.SourceName != "dicom" ||
		strings.Join(boxes.Files, ",") != "series/boxes_0.dcm,series/boxes_1.dcm" ||
		boxes.Size != fi0.Size()+fi1.Size() || boxes.Version != SeriesVersion([]os.FileInfo{fi0, fi1}) {
		t.Fatalf("series item %+v", boxes)
	}
	if other.Name != "other.dicom" || len(other.Files) != 1 {
		t.Fatalf("one-file series item %+v", other)
	}
	files := s.ItemFiles(boxes.ID)
	if len(files) != 2 || files[0].Name != "boxes_0.dcm" || files[1].Name != "boxes_1.dcm" ||
		files[1].ItemID != boxes.ID || files[1].Size != fi1.Size() || files[1].MimeType != "application/dicom" {
		t.Fatalf("series files %+v", files)
	}
	if f, ok := s.File(ID("file", "series/boxes_1.dcm")); !ok || f.ItemID != boxes.ID {
		t.Errorf("second instance's file record %+v %v", f, ok)
	}
	if _, ok := s.Item(ID("item", "series/boxes_1.dcm")); ok {
		t.Error("the second instance got an item of its own")
	}
	if series, _ := s.Folder(ID("folder", "series")); series.Size != boxes.Size+other.Size {
		t.Errorf("folder size %d, want %d", series.Size, boxes.Size+other.Size)
	}

	s.freshFor = 0 // check the files on every refresh
	// Refresh covers every instance: touching the second one changes the
	// version; both real paths come back, the first file's first.
	same, reals, err := s.RefreshAll(boxes)
	if err != nil || same.Version != boxes.Version || len(reals) != 2 || filepath.Base(reals[0]) != "boxes_0.dcm" {
		t.Fatalf("refresh of an untouched series: %v %v %q", err, reals, same.Version)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(slides, "series", "boxes_1.dcm"), later, later); err != nil {
		t.Fatal(err)
	}
	n, _, err := s.RefreshAll(boxes)
	if err != nil || n.Version == boxes.Version {
		t.Fatalf("refresh after touching an instance: %v, version %q unchanged", err, n.Version)
	}
	if stored, _ := s.Item(boxes.ID); stored.Version != n.Version {
		t.Errorf("new version not stored: %+v", stored)
	}
	// Re-import keeps the id and groups the same way.
	mustImportWith(t, s, claimReal)
	if again, _ := s.Item(boxes.ID); !again.Created.Equal(boxes.Created) || len(again.Files) != 2 {
		t.Errorf("re-import: %+v", again)
	}
	if err := os.Remove(filepath.Join(slides, "series", "boxes_1.dcm")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RefreshAll(n); err == nil {
		t.Error("refresh of a series with a deleted instance succeeded")
	}
	mustImportWith(t, s, claimReal)
	if it, _ := s.Item(boxes.ID); len(it.Files) != 1 || len(s.ItemFiles(boxes.ID)) != 1 {
		t.Errorf("after deleting an instance and re-importing: %+v", it)
	}
	if _, ok := s.File(ID("file", "series/boxes_1.dcm")); ok {
		t.Error("the deleted instance's file record survived the import")
	}
}

func mustImportWith(t *testing.T, s *Store, can CanOpenFunc) ImportStats {
	t.Helper()
	st, err := s.Import(context.Background(), ImportOptions{CanOpen: can})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRemoteItemsSurviveImports(t *testing.T) {
	data, slides := setup(t)
	s, err := Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Before any import the root folder is created for the item.
	it, err := s.PutRemote(Item{Name: "remote slide", Remote: "dicomweb:x=1", SourceName: "dicomweb", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if it.ID != RemoteID("dicomweb:x=1") || it.FolderID != ID("folder", "") || it.Path != "" {
		t.Fatalf("remote item %+v", it)
	}
	if _, ok := s.Folder(ID("folder", "")); !ok {
		t.Fatal("root folder not created")
	}
	mustImport(t, s, "")
	sub, err := s.PutRemote(Item{Name: "in sub", Remote: "dicomweb:x=2", SourceName: "dicomweb", Version: "v1",
		FolderID: ID("folder", "sub/deeper")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRemote(Item{Name: "x", Remote: "dicomweb:x=3", SourceName: "dicomweb", Version: "v1",
		FolderID: ID("folder", "nope")}); !errors.Is(err, ErrNoFolder) {
		t.Errorf("unknown folder: %v", err)
	}
	// Importing again updates in place and keeps the creation time.
	again, err := s.PutRemote(Item{Name: "renamed", Remote: "dicomweb:x=1", SourceName: "dicomweb", Version: "v2"})
	if err != nil || again.ID != it.ID || !again.Created.Equal(it.Created) || again.Version != "v2" {
		t.Fatalf("re-put: %+v %v", again, err)
	}
	if err := os.RemoveAll(filepath.Join(slides, "sub", "deeper")); err != nil {
		t.Fatal(err)
	}
	mustImport(t, s, "")
	if got, ok := s.Item(it.ID); !ok || got.Name != "renamed" {
		t.Errorf("full import dropped the remote item: %+v", got)
	}
	if got, ok := s.Item(sub.ID); !ok || got.FolderID != ID("folder", "") {
		t.Errorf("remote item of a removed folder: %+v %v", got, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(data, slides); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, ok := s.Item(it.ID); !ok || got.Remote != "dicomweb:x=1" || got.Version != "v2" {
		t.Errorf("after reopen: %+v", got)
	}
}
