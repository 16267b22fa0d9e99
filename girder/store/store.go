// Package store is the embedded item store of the Girder API: folders, items
// and files mirrored from a slide directory, and collections synchronised
// from remote sources (DICOMweb archives), kept in a bbolt database in the
// data directory. Ids are derived from slide-root-relative paths and from
// remote locators, so they stay the same across restarts, re-imports and
// replicas: the database is a cache of the sources, rebuilt by importing.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names.
var (
	bucketFolders = []byte("folders")
	bucketItems   = []byte("items")
	bucketFiles   = []byte("files")
)

// DBName is the database file name inside the data directory.
const DBName = "tileserver.db"

// Folder mirrors one directory of the slide root.
type Folder struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// ParentID is the parent folder's id, or CollectionID for the root.
	ParentID string `json:"parentId"`
	// ParentType is "folder" or "collection".
	ParentType string `json:"parentType"`
	// Path is the slash-separated path relative to the slide root ("" for
	// the root folder).
	Path        string    `json:"path"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Description string    `json:"description"`
	// Size is the total size of the items below the folder.
	Size int64 `json:"size"`
	// Collection is the id of the remote source's collection the folder
	// belongs to (see Collection); "" for the slide root's folders.
	Collection string `json:"collection,omitempty"`
}

// Item is one readable image file.
type Item struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	FolderID    string    `json:"folderId"`
	Path        string    `json:"path"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Size        int64     `json:"size"`
	Description string    `json:"description"`
	FileID      string    `json:"fileId"`
	SourceName  string    `json:"sourceName"`
	// Version is the file's size and modification time; it changes
	// whenever the file does. For a DICOM series it combines every
	// instance's (SeriesVersion); for a remote item it is set at import.
	Version string `json:"version"`
	// Files lists the slide-root-relative paths of every file of a DICOM
	// series item, Path first; the series is opened from exactly these
	// files, so Version covers all of them. Empty for other items.
	Files []string `json:"files,omitempty"`
	// Remote is the source locator of an item whose image lives on another
	// server (a DICOMweb series); such an item has no Path and no files.
	Remote string `json:"remote,omitempty"`
	// Collection is the id of the remote source's collection the item
	// belongs to; "" for items of the slide root (and imported series).
	Collection string `json:"collection,omitempty"`
}

// BaseID is the id of the collection a folder belongs to.
func (f Folder) BaseID() string {
	if f.Collection != "" {
		return f.Collection
	}
	return CollectionID
}

// BaseID is the id of the collection an item belongs to.
func (it Item) BaseID() string {
	if it.Collection != "" {
		return it.Collection
	}
	return CollectionID
}

// File is the one file of an item.
type File struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	ItemID   string    `json:"itemId"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	MimeType string    `json:"mimeType"`
	Created  time.Time `json:"created"`
}

// CollectionID is the parentId of the root folder: the slide root plays the
// part of a Girder collection.
var CollectionID = ID("collection", "")

// ID derives a stable 24-hex id from a record kind and a slide-root-relative
// path.
func ID(kind, rel string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + rel))
	return hex.EncodeToString(sum[:12])
}

// Version returns the version string of a file's size and modification time.
func Version(fi os.FileInfo) string {
	return fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())
}

// SeriesVersion is the version of a multi-file item: the total size and a
// hash of every file's size and modification time, in order, so that any
// change to any file changes it. One file gives Version(fi).
func SeriesVersion(fis []os.FileInfo) string {
	if len(fis) == 1 {
		return Version(fis[0])
	}
	h := sha256.New()
	var total int64
	for _, fi := range fis {
		total += fi.Size()
		fmt.Fprintf(h, "%d-%d\n", fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprintf("%d-%x", total, h.Sum(nil)[:8])
}

// Store is the item store. Reads are served from memory; bbolt is the
// durable copy. Safe for concurrent use.
type Store struct {
	db   *bolt.DB
	root string // real (symlink-free) absolute slide root
	// objects, when set, is the slide root in object storage (root is
	// then "").
	objects Objects

	mu          sync.RWMutex
	collections map[string]*Collection
	folders     map[string]*Folder
	items       map[string]*Item
	files       map[string]*File

	importMu sync.Mutex

	// checked remembers, per item id, when its files were last found
	// unchanged (a *checkedItem), so that a busy item costs one stat per
	// freshFor rather than one per request.
	checked  sync.Map
	freshFor time.Duration
}

// FreshFor is how long a file's size and modification time are
// trusted after a check: a replaced slide is noticed (and served with new
// cache keys) at most this long after it changed.
const FreshFor = time.Second

// checkedItem is an item's version and real file paths as last checked.
type checkedItem struct {
	at      time.Time
	version string
	reals   []string
}

// Open opens (creating if needed) the database in dataDir for the slide root.
// The slide root must exist.
func Open(dataDir, slideRoot string) (*Store, error) {
	abs, err := filepath.Abs(slideRoot)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("slide root: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dataDir, DBName), 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open item store: %w", err)
	}
	s := &Store{db: db, root: real, freshFor: FreshFor}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Root returns the real absolute path of the slide root.
func (s *Store) Root() string { return s.root }

func (s *Store) load() error {
	s.collections = map[string]*Collection{}
	s.folders = map[string]*Folder{}
	s.items = map[string]*Item{}
	s.files = map[string]*File{}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketCollections, bucketFolders, bucketItems, bucketFiles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := loadBucket(tx, bucketCollections, s.collections); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketFolders, s.folders); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketItems, s.items); err != nil {
			return err
		}
		return loadBucket(tx, bucketFiles, s.files)
	})
}

func loadBucket[T any](tx *bolt.Tx, name []byte, into map[string]*T) error {
	return tx.Bucket(name).ForEach(func(k, v []byte) error {
		rec := new(T)
		if err := json.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("item store: corrupt record %s/%s: %w", name, k, err)
		}
		into[string(k)] = rec
		return nil
	})
}

func put(tx *bolt.Tx, bucket []byte, id string, rec any) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(id), v)
}

// Folder returns a folder by id.
func (s *Store) Folder(id string) (Folder, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.folders[id]
	if !ok {
		return Folder{}, false
	}
	return *f, true
}

// Item returns an item by id.
func (s *Store) Item(id string) (Item, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[id]
	if !ok {
		return Item{}, false
	}
	return *it, true
}

// File returns a file by id.
func (s *Store) File(id string) (File, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.files[id]
	if !ok {
		return File{}, false
	}
	return *f, true
}

// Folders returns the folders whose parent is parentID with the given parent
// type, sorted by name.
func (s *Store) Folders(parentType, parentID string) []Folder {
	s.mu.RLock()
	var out []Folder
	for _, f := range s.folders {
		if f.ParentID == parentID && f.ParentType == parentType {
			out = append(out, *f)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ItemQuery selects items: FolderID restricts to a folder, Text to names
// containing it (case-insensitive), Name to an exact name.
type ItemQuery struct {
	FolderID, Text, Name string
}

// Items returns the items matching q, sorted by name then id.
func (s *Store) Items(q ItemQuery) []Item {
	text := strings.ToLower(q.Text)
	s.mu.RLock()
	var out []Item
	for _, it := range s.items {
		if q.FolderID != "" && it.FolderID != q.FolderID {
			continue
		}
		if q.Name != "" && it.Name != q.Name {
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(it.Name), text) {
			continue
		}
		out = append(out, *it)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// ItemFiles returns the files of an item.
func (s *Store) ItemFiles(itemID string) []File {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[itemID]
	if !ok {
		return nil
	}
	if len(it.Files) > 0 {
		var out []File
		for _, rel := range it.Files {
			if f, ok := s.files[ID("file", rel)]; ok {
				out = append(out, *f)
			}
		}
		return out
	}
	if f, ok := s.files[it.FileID]; ok {
		return []File{*f}
	}
	return nil
}

// ErrNotLocal is returned by Resolve when the slide root is in object
// storage.
var ErrNotLocal = errors.New("the slide is in object storage, not a local file")

// ErrOutsideRoot is returned for a path that resolves outside the slide
// root.
var ErrOutsideRoot = errors.New("path escapes the slide root")

// Resolve turns a slide-root-relative path into a real absolute path,
// following symlinks and rejecting anything that leaves the root or is not a
// regular file. It returns the file's info too.
func (s *Store) Resolve(rel string) (string, os.FileInfo, error) {
	if s.objects != nil {
		return "", nil, ErrNotLocal
	}
	if rel == "" || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", nil, ErrOutsideRoot
	}
	p := filepath.Join(s.root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return "", nil, err
	}
	// The directories below the root were checked when the tree was walked
	// (the walk does not follow directory symlinks); only a file that is
	// itself a link needs resolving on every access.
	if fi.Mode().IsRegular() {
		return p, fi, nil
	}
	real, err := s.within(p)
	if err != nil {
		return "", nil, err
	}
	fi, err = os.Stat(real)
	if err != nil {
		return "", nil, err
	}
	if !fi.Mode().IsRegular() {
		return "", nil, fmt.Errorf("%s: not a regular file", rel)
	}
	return real, fi, nil
}

// within resolves p and checks that it stays inside the root.
func (s *Store) within(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(s.root, real)
	if err != nil || !filepath.IsLocal(r) {
		return "", ErrOutsideRoot
	}
	return real, nil
}

// Refresh checks an item against its file: when the file's size or
// modification time changed it stores the new version and returns the
// updated item. It returns the item, the real file path and an error when the
// file is gone or escapes the root.
func (s *Store) Refresh(it Item) (Item, string, error) {
	n, reals, err := s.RefreshAll(it)
	if err != nil {
		return n, "", err
	}
	return n, reals[0], nil
}

// RefreshAll is Refresh for items of one or more files: it checks every
// file of the item (all instances of a DICOM series) and returns their real
// paths, Path's first. Any file gone is an error until the next import.
// Files found unchanged less than a second ago are not checked again.
func (s *Store) RefreshAll(it Item) (Item, []string, error) {
	if v, ok := s.checked.Load(it.ID); ok {
		c := v.(*checkedItem)
		if c.version == it.Version && time.Since(c.at) < s.freshFor {
			return it, c.reals, nil
		}
	}
	n, reals, err := s.refreshAll(it)
	if err != nil {
		s.checked.Delete(it.ID)
		return n, reals, err
	}
	s.checked.Store(n.ID, &checkedItem{at: time.Now(), version: n.Version, reals: reals})
	return n, reals, nil
}

// refreshAll is RefreshAll without the memory of recent checks.
func (s *Store) refreshAll(it Item) (Item, []string, error) {
	if s.objects != nil {
		return s.refreshObjects(it)
	}
	rels := it.Files
	if len(rels) == 0 {
		rels = []string{it.Path}
	}
	reals := make([]string, len(rels))
	fis := make([]os.FileInfo, len(rels))
	for i, rel := range rels {
		real, fi, err := s.Resolve(rel)
		if err != nil {
			return it, nil, err
		}
		reals[i], fis[i] = real, fi
	}
	v := SeriesVersion(fis)
	if v == it.Version {
		return it, reals, nil
	}
	s.mu.Lock()
	cur, ok := s.items[it.ID]
	if !ok {
		s.mu.Unlock()
		return it, nil, os.ErrNotExist
	}
	n := *cur
	n.Version, n.Size, n.Updated = v, 0, time.Time{}
	var changed []*File
	for i, fi := range fis {
		n.Size += fi.Size()
		if mt := fi.ModTime().UTC(); mt.After(n.Updated) {
			n.Updated = mt
		}
		id := n.FileID
		if len(it.Files) > 0 {
			id = ID("file", rels[i])
		}
		if f, ok := s.files[id]; ok && f.Size != fi.Size() {
			c := *f
			c.Size = fi.Size()
			changed = append(changed, &c)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, bucketItems, n.ID, &n); err != nil {
			return err
		}
		for _, f := range changed {
			if err := put(tx, bucketFiles, f.ID, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.items[n.ID] = &n
		for _, f := range changed {
			s.files[f.ID] = f
		}
	}
	s.mu.Unlock()
	if err != nil {
		return it, nil, err
	}
	return n, reals, nil
}

// AllFolders returns every folder, sorted by name.
func (s *Store) AllFolders() []Folder {
	s.mu.RLock()
	out := make([]Folder, 0, len(s.folders))
	for _, f := range s.folders {
		out = append(out, *f)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
