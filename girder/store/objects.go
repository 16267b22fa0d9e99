package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ObjectInfo describes one object of a slide root in object storage.
type ObjectInfo struct {
	// Key is slash-separated and relative to the root's prefix: it plays
	// the part of a slide-root-relative path, so ids are derived from it
	// exactly as from a file's path.
	Key string
	// Version changes whenever the object is replaced (ETag, size, time).
	Version  string
	Size     int64
	Modified time.Time
}

// Objects is a slide root in object storage (a bucket prefix).
type Objects interface {
	// Name names the root folder.
	Name() string
	// List returns every object below the root.
	List(ctx context.Context) ([]ObjectInfo, error)
	// Stat returns one object's current description; a missing object is
	// an error.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Path is the path the pipeline opens the object by.
	Path(key string) string
	// SeriesUID is the Series Instance UID of a DICOM object, "" for
	// other objects.
	SeriesUID(ctx context.Context, o ObjectInfo) string
}

// OpenObjects opens (creating if needed) the database in dataDir for a
// slide root in object storage.
func OpenObjects(dataDir string, objs Objects) (*Store, error) {
	db, err := bolt.Open(dataDir+"/"+DBName, 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open item store: %w", err)
	}
	s := &Store{db: db, objects: objs, freshFor: FreshFor}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// objectsVersion is the version of an item of several objects.
func objectsVersion(os []ObjectInfo) string {
	if len(os) == 1 {
		return os[0].Version
	}
	h := sha256.New()
	var total int64
	for _, o := range os {
		total += o.Size
		fmt.Fprintf(h, "%s\n", o.Version)
	}
	return fmt.Sprintf("%d-%x", total, h.Sum(nil)[:8])
}

// importObjects is Import for a slide root in object storage: folders
// from key prefixes, one item per readable object (one per DICOM series
// in a folder), records keyed and described as Import does for files.
func (s *Store) importObjects(ctx context.Context, opt ImportOptions, log *slog.Logger) (ImportStats, error) {
	sub, err := s.relSub(opt.Sub)
	if err != nil {
		return ImportStats{}, err
	}
	list, err := s.objects.List(ctx)
	if err != nil {
		return ImportStats{}, fmt.Errorf("import: %w", err)
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	var (
		st      ImportStats
		folders = map[string]*Folder{}
		items   = map[string]*Item{}
		files   = map[string]*File{}
		// series groups DICOM objects by folder and Series Instance UID.
		series = map[[2]string][]ObjectInfo{}
		// members are DICOM objects of a series that no reader opens
		// alone, joined to their series when another instance opens.
		members = map[[2]string][]ObjectInfo{}
	)
	addFolder := func(rel string, mod time.Time) {
		id := ID("folder", rel)
		if f := folders[id]; f != nil {
			if mod.After(f.Updated) {
				f.Updated = mod
			}
			return
		}
		f := &Folder{ID: id, Path: rel, Created: mod, Updated: mod}
		if rel == "" {
			f.Name = s.objects.Name()
			f.ParentID, f.ParentType = CollectionID, "collection"
		} else {
			f.Name = path.Base(rel)
			f.ParentID, f.ParentType = ID("folder", parentDir(rel)), "folder"
		}
		folders[id] = f
	}
	addFolder("", time.Unix(0, 0).UTC())
	under := func(rel string) bool {
		return sub == "" || rel == sub || strings.HasPrefix(rel, sub+"/")
	}
	for _, o := range list {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hidden := false
		for _, part := range strings.Split(o.Key, "/") {
			hidden = hidden || strings.HasPrefix(part, ".") || part == ""
		}
		if hidden || path.Clean(o.Key) != o.Key {
			continue
		}
		for rel := parentDir(o.Key); ; rel = parentDir(rel) {
			addFolder(rel, o.Modified)
			if rel == "" {
				break
			}
		}
		if !under(o.Key) {
			continue
		}
		source, err := opt.CanOpen(ctx, s.objects.Path(o.Key))
		if err != nil {
			// An instance that is no slide by itself (a thumbnail or
			// label) still belongs to its series, as on disk.
			if uid := s.objects.SeriesUID(ctx, o); uid != "" {
				k := [2]string{parentDir(o.Key), uid}
				members[k] = append(members[k], o)
				continue
			}
			log.Info("import: skipping file no reader opens", "path", o.Key, "reason", err.Error())
			st.Skipped++
			continue
		}
		if source == dicomSource {
			if uid := s.objects.SeriesUID(ctx, o); uid != "" {
				k := [2]string{parentDir(o.Key), uid}
				series[k] = append(series[k], o)
				continue
			}
		}
		s.addObjectItem([]ObjectInfo{o}, source, items, files)
	}
	for k, g := range members {
		if series[k] == nil {
			log.Info("import: skipping DICOM files of a series no reader opens", "path", g[0].Key, "files", len(g))
			st.Skipped += len(g)
			continue
		}
		series[k] = append(series[k], g...)
	}
	for _, g := range series {
		sort.Slice(g, func(i, j int) bool { return g[i].Key < g[j].Key })
		s.addObjectItem(g, dicomSource, items, files)
	}
	if sub != "" {
		for id, f := range folders {
			if !under(f.Path) && !strings.HasPrefix(sub, f.Path) {
				delete(folders, id)
			}
		}
	}
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
	return s.commitImport(sub, under, folders, items, files, st, log)
}

// addObjectItem records the item of one object, or of the objects of one
// DICOM series (sorted; the first names and identifies the item).
func (s *Store) addObjectItem(objs []ObjectInfo, source string, items map[string]*Item, files map[string]*File) {
	first := objs[0].Key
	it := &Item{ID: ID("item", first), Name: path.Base(first), FolderID: ID("folder", parentDir(first)),
		Path: first, FileID: ID("file", first), SourceName: source, Version: objectsVersion(objs)}
	if len(objs) > 1 {
		for _, o := range objs {
			it.Files = append(it.Files, o.Key)
		}
	}
	for _, o := range objs {
		it.Size += o.Size
		if o.Modified.After(it.Updated) {
			it.Updated = o.Modified
		}
	}
	it.Created = it.Updated
	s.mu.RLock()
	if old := s.items[it.ID]; old != nil {
		it.Description = old.Description
	}
	s.mu.RUnlock()
	items[it.ID] = it
	for _, o := range objs {
		name := path.Base(o.Key)
		files[ID("file", o.Key)] = &File{ID: ID("file", o.Key), Name: name, ItemID: it.ID, Path: o.Key,
			Size: o.Size, MimeType: mimeType(name), Created: it.Created}
	}
}

// refreshObjects is refreshAll for an item in object storage: one HEAD per
// object.
func (s *Store) refreshObjects(it Item) (Item, []string, error) {
	keys := it.Files
	if len(keys) == 0 {
		keys = []string{it.Path}
	}
	objs := make([]ObjectInfo, len(keys))
	paths := make([]string, len(keys))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, k := range keys {
		o, err := s.objects.Stat(ctx, k)
		if err != nil {
			return it, nil, err
		}
		objs[i], paths[i] = o, s.objects.Path(k)
	}
	v := objectsVersion(objs)
	if v == it.Version {
		return it, paths, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.items[it.ID]
	if !ok {
		return it, nil, fmt.Errorf("item %s is gone", it.ID)
	}
	n := *cur
	n.Version, n.Size = v, 0
	for _, o := range objs {
		n.Size += o.Size
		if o.Modified.After(n.Updated) {
			n.Updated = o.Modified
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return put(tx, bucketItems, n.ID, &n) }); err != nil {
		return it, nil, err
	}
	s.items[n.ID] = &n
	return n, paths, nil
}
