package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// CanOpenFunc reports whether a reader claims the file at the real absolute
// path, and with which source name.
type CanOpenFunc func(ctx context.Context, path string) (sourceName string, err error)

// ImportOptions configure one scan.
type ImportOptions struct {
	// Sub is a slash-separated directory below the slide root to re-scan;
	// "" scans the whole root.
	Sub     string
	CanOpen CanOpenFunc
	Logger  *slog.Logger
	// ProgressEvery logs a progress line every that many files (0: 500).
	ProgressEvery int
}

// ImportStats counts what a scan did.
type ImportStats struct {
	Folders int `json:"folders"`
	Items   int `json:"items"`
	Skipped int `json:"skipped"`
	Removed int `json:"removed"`
}

// ErrBadImportPath is returned when ImportOptions.Sub is not a directory
// inside the slide root.
var ErrBadImportPath = errors.New("import path is not a directory inside the slide root")

// Import walks the slide root (or Sub below it), mirrors directories as
// folders and readable files as items, and removes records of files and
// directories below Sub that are gone. Files no reader opens are skipped
// with one log line each. Only one import runs at a time.
func (s *Store) Import(ctx context.Context, opt ImportOptions) (ImportStats, error) {
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	every := opt.ProgressEvery
	if every <= 0 {
		every = 500
	}
	if s.objects != nil {
		return s.importObjects(ctx, opt, log)
	}
	sub, err := s.relSub(opt.Sub)
	if err != nil {
		return ImportStats{}, err
	}
	start := s.root
	if sub != "" {
		p, err := s.within(filepath.Join(s.root, filepath.FromSlash(sub)))
		if err != nil {
			return ImportStats{}, ErrBadImportPath
		}
		// A sub-directory reached through a symlink would be mirrored
		// under the wrong path; only real directories are accepted.
		if p != filepath.Join(s.root, filepath.FromSlash(sub)) {
			return ImportStats{}, ErrBadImportPath
		}
		start = p
	}
	if fi, err := os.Stat(start); err != nil || !fi.IsDir() {
		return ImportStats{}, ErrBadImportPath
	}

	s.importMu.Lock()
	defer s.importMu.Unlock()

	var (
		st      ImportStats
		folders = map[string]*Folder{}
		items   = map[string]*Item{}
		files   = map[string]*File{}
		seen    int
		// claimed holds the files already recorded or skipped as part
		// of a DICOM series met earlier in the walk.
		claimed = map[string]bool{}
	)
	existingFolder := func(id string) *Folder { return s.folders[id] }
	existingItem := func(id string) *Item { return s.items[id] }

	addFolder := func(rel string, fi os.FileInfo) {
		id := ID("folder", rel)
		// Created is the directory's modification time, not the time of the
		// scan, so that replicas scanning the same slides at different
		// times describe the folder the same way.
		f := &Folder{ID: id, Path: rel, Created: fi.ModTime().UTC(), Updated: fi.ModTime().UTC()}
		if rel == "" {
			f.Name = filepath.Base(s.root)
			f.ParentID, f.ParentType = CollectionID, "collection"
		} else {
			f.Name = path.Base(rel)
			f.ParentID, f.ParentType = ID("folder", parentDir(rel)), "folder"
		}
		s.mu.RLock()
		if old := existingFolder(id); old != nil {
			f.Created, f.Description = old.Created, old.Description
		}
		s.mu.RUnlock()
		folders[id] = f
	}

	// Ancestors of a partial scan must exist so the tree stays connected.
	if sub != "" {
		for rel := parentDir(sub); ; rel = parentDir(rel) {
			if fi, err := os.Stat(filepath.Join(s.root, filepath.FromSlash(rel))); err == nil {
				addFolder(rel, fi)
			}
			if rel == "" {
				break
			}
		}
	}

	err = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel, rerr := filepath.Rel(s.root, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if err != nil {
			log.Warn("import: cannot read", "path", rel, "err", err)
			st.Skipped++
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if rel != "" && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			addFolder(rel, fi)
			return nil
		}
		if claimed[p] {
			return nil
		}
		seen++
		if seen%every == 0 {
			log.Info("import: progress", "files", seen, "items", len(items))
		}
		real := p
		if d.Type()&fs.ModeSymlink != 0 {
			r, err := s.within(p)
			if err != nil {
				log.Warn("import: skipping link", "path", rel, "reason", "points outside the slide root or is broken")
				st.Skipped++
				return nil
			}
			real = r
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() {
			// Directory symlinks are not followed: they could loop or
			// mirror a tree twice.
			log.Warn("import: skipping", "path", rel, "reason", "not a regular file")
			st.Skipped++
			return nil
		}
		link := real != p
		source, err := opt.CanOpen(ctx, real)
		if err != nil {
			// The other files of a DICOM series would fail the same
			// way: one line for the series.
			n := 1
			if !link {
				ms := seriesMembers(p)
				for _, m := range ms {
					claimed[m] = true
				}
				n = max(1, len(ms))
			}
			log.Info("import: skipping file no reader opens", "path", rel, "reason", err.Error(), "files", n)
			st.Skipped += n
			return nil
		}
		if source == dicomSource {
			g, err := s.seriesGroup(p, rel, fi, link)
			if err != nil {
				log.Warn("import: skipping", "path", rel, "reason", err.Error())
				st.Skipped++
				return nil
			}
			for _, m := range g.paths {
				claimed[m] = true
			}
			it, fs := g.records(source)
			s.mu.RLock()
			if old := existingItem(it.ID); old != nil {
				it.Created, it.Description = old.Created, old.Description
				for _, f := range fs {
					f.Created = old.Created
				}
			}
			s.mu.RUnlock()
			items[it.ID] = it
			for _, f := range fs {
				files[f.ID] = f
			}
			return nil
		}
		itemID, fileID := ID("item", rel), ID("file", rel)
		name := path.Base(rel)
		it := &Item{
			ID: itemID, Name: name, FolderID: ID("folder", parentDir(rel)), Path: rel,
			Created: fi.ModTime().UTC(), Updated: fi.ModTime().UTC(), Size: fi.Size(),
			FileID: fileID, SourceName: source, Version: Version(fi),
		}
		created := it.Created
		s.mu.RLock()
		if old := existingItem(itemID); old != nil {
			it.Created, it.Description = old.Created, old.Description
			created = old.Created
		}
		s.mu.RUnlock()
		items[itemID] = it
		files[fileID] = &File{
			ID: fileID, Name: name, ItemID: itemID, Path: rel, Size: fi.Size(),
			MimeType: mimeType(name), Created: created,
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("import: %w", err)
	}

	// Folder sizes: every item counts towards all of its ancestors.
	for _, it := range items {
		for rel := parentDir(it.Path); ; rel = parentDir(rel) {
			if f := folders[ID("folder", rel)]; f != nil {
				f.Size += it.Size
			}
			if rel == "" {
				break
			}
		}
	}

	under := func(rel string) bool {
		return sub == "" || rel == sub || strings.HasPrefix(rel, sub+"/")
	}
	return s.commitImport(sub, under, folders, items, files, st, log)
}

// commitImport makes the records below sub (under reports which) exactly
// folders, items and files: stores them and removes the records no longer
// found, in one transaction.
func (s *Store) commitImport(sub string, under func(string) bool, folders map[string]*Folder, items map[string]*Item,
	files map[string]*File, st ImportStats, log *slog.Logger) (ImportStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var goneFolders, goneItems, goneFiles []string
	for id, f := range s.folders {
		if f.Collection != "" {
			continue // a remote source's folder, synchronised on its own
		}
		if under(f.Path) && f.Path != "" && folders[id] == nil {
			goneFolders = append(goneFolders, id)
		}
	}
	var movedRemote []*Item
	for id, it := range s.items {
		if it.Remote != "" {
			continue
		}
		if under(it.Path) && items[id] == nil {
			goneItems = append(goneItems, id)
		}
	}
	for id, f := range s.files {
		if under(f.Path) && files[id] == nil {
			goneFiles = append(goneFiles, id)
		}
	}
	// A remote item whose folder went away moves to the root folder
	// rather than disappearing from the tree.
	for _, id := range goneFolders {
		for _, it := range s.items {
			if it.Remote != "" && it.FolderID == id {
				c := *it
				c.FolderID = ID("folder", "")
				movedRemote = append(movedRemote, &c)
			}
		}
	}
	if sub != "" {
		// Ancestor sizes computed above only saw this sub-tree: add the
		// items outside it.
		for _, it := range s.items {
			if under(it.Path) {
				continue
			}
			for rel := parentDir(it.Path); ; rel = parentDir(rel) {
				if f := folders[ID("folder", rel)]; f != nil {
					f.Size += it.Size
				}
				if rel == "" {
					break
				}
			}
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for id, f := range folders {
			if err := put(tx, bucketFolders, id, f); err != nil {
				return err
			}
		}
		for id, it := range items {
			if err := put(tx, bucketItems, id, it); err != nil {
				return err
			}
		}
		for id, f := range files {
			if err := put(tx, bucketFiles, id, f); err != nil {
				return err
			}
		}
		for _, it := range movedRemote {
			if err := put(tx, bucketItems, it.ID, it); err != nil {
				return err
			}
		}
		for _, del := range []struct {
			b   []byte
			ids []string
		}{{bucketFolders, goneFolders}, {bucketItems, goneItems}, {bucketFiles, goneFiles}} {
			for _, id := range del.ids {
				if err := tx.Bucket(del.b).Delete([]byte(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("import: %w", err)
	}
	for id, f := range folders {
		s.folders[id] = f
	}
	for id, it := range items {
		s.items[id] = it
	}
	for id, f := range files {
		s.files[id] = f
	}
	for _, it := range movedRemote {
		s.items[it.ID] = it
	}
	for _, id := range goneFolders {
		delete(s.folders, id)
	}
	for _, id := range goneItems {
		delete(s.items, id)
	}
	for _, id := range goneFiles {
		delete(s.files, id)
	}
	st.Folders, st.Items, st.Removed = len(folders), len(items), len(goneItems)
	log.Info("import: done", "folders", st.Folders, "items", st.Items, "skipped", st.Skipped, "removed", st.Removed)
	return st, nil
}

// relSub turns an import path (relative to the root, or absolute inside
// it) into a clean slash-separated relative path.
func (s *Store) relSub(sub string) (string, error) {
	if sub == "" {
		return "", nil
	}
	if filepath.IsAbs(sub) {
		rel, err := filepath.Rel(s.root, filepath.Clean(sub))
		if err != nil {
			return "", ErrBadImportPath
		}
		sub = rel
	}
	if !filepath.IsLocal(sub) {
		return "", ErrBadImportPath
	}
	sub = filepath.ToSlash(filepath.Clean(sub))
	if sub == "." {
		return "", nil
	}
	return sub, nil
}

// parentDir returns the slash-separated parent of rel, "" at the top.
func parentDir(rel string) string {
	d := path.Dir(rel)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// mimeType guesses a file's MIME type from its name.
func mimeType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	switch ext {
	case ".svs", ".tif", ".tiff", ".ptif", ".ptiff", ".qptiff", ".ndpi", ".scn", ".bif":
		return "image/tiff"
	case ".dcm", ".dicom":
		return "application/dicom"
	case ".jp2", ".j2k", ".jpf", ".jpx":
		return "image/jp2"
	case ".mrxs":
		return "image/mirax"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
