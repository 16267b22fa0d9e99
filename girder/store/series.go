package store

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/tileserver/tileserver/tilesource/dicom"
)

// dicomSource is the source name the DICOM reader reports; its files are
// grouped by series at import.
const dicomSource = "dicom"

// seriesMembers returns the files of p's DICOM series in p's directory
// (p included, sorted), leaving out hidden files as the walk does. It is
// p alone when p is not DICOM.
func seriesMembers(p string) []string {
	var out []string
	for _, m := range dicom.SeriesFiles(p) {
		if m == p || !strings.HasPrefix(filepath.Base(m), ".") {
			out = append(out, m)
		}
	}
	return out
}

// seriesGroup is the files of one DICOM series, recorded as one item.
type seriesGroup struct {
	paths []string // absolute, sorted
	rels  []string // slide-root-relative, same order
	infos []os.FileInfo
}

// seriesGroup collects the series of the file at p (rel below the root,
// info fi). A file reached through a link is not grouped: its siblings
// live in another directory.
func (s *Store) seriesGroup(p, rel string, fi os.FileInfo, link bool) (*seriesGroup, error) {
	if link {
		return &seriesGroup{paths: []string{p}, rels: []string{rel}, infos: []os.FileInfo{fi}}, nil
	}
	g := &seriesGroup{}
	dir := parentDir(rel)
	for _, m := range seriesMembers(p) {
		mfi := fi
		if m != p {
			var err error
			if mfi, err = os.Stat(m); err != nil || !mfi.Mode().IsRegular() {
				continue
			}
		}
		g.paths = append(g.paths, m)
		g.rels = append(g.rels, path.Join(dir, filepath.Base(m)))
		g.infos = append(g.infos, mfi)
	}
	if len(g.paths) == 0 {
		return nil, errors.New("DICOM series files vanished")
	}
	return g, nil
}

// records builds the item, named and identified after the series' first
// file, and one file record per instance. Created is the newest file's
// modification time, the same on every replica.
func (g *seriesGroup) records(source string) (*Item, []*File) {
	first := g.rels[0]
	it := &Item{
		ID: ID("item", first), Name: path.Base(first), FolderID: ID("folder", parentDir(first)),
		Path: first, FileID: ID("file", first), SourceName: source,
		Version: SeriesVersion(g.infos), Files: g.rels,
	}
	files := make([]*File, len(g.rels))
	for i, rel := range g.rels {
		fi := g.infos[i]
		it.Size += fi.Size()
		if mt := fi.ModTime().UTC(); mt.After(it.Updated) {
			it.Updated = mt
		}
		name := path.Base(rel)
		files[i] = &File{
			ID: ID("file", rel), Name: name, ItemID: it.ID, Path: rel, Size: fi.Size(),
			MimeType: mimeType(name),
		}
	}
	it.Created = it.Updated
	for _, f := range files {
		f.Created = it.Created
	}
	return it, files
}
