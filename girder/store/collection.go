package store

import (
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketCollections = []byte("collections")

// Collection is a Girder collection whose images live on another server
// (a DICOMweb archive): its folders and items are whatever that server
// lists, refreshed by SyncCollection. The slide root is the other kind of
// collection (CollectionID) and has no record.
type Collection struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Key names the source of the collection ("dicomweb:NAME"); the id is
	// derived from it.
	Key         string    `json:"key"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Size        int64     `json:"size"`
}

// CollectionKeyID is the id of the collection with a key.
func CollectionKeyID(key string) string { return ID("collection", key) }

// RemoteFolder is a folder of a collection synchronised from a server:
// Key is unique within the collection (a Study Instance UID).
type RemoteFolder struct {
	Key, Name string
	Created   time.Time
}

// RemoteItem is an item of such a collection, in the folder FolderKey.
// Remote is its source locator (the id is RemoteID(Remote)), Version
// changes whenever its image does.
type RemoteItem struct {
	FolderKey, Name, SourceName, Remote, Version string
	Created                                      time.Time
}

// RemoteFolderID is the id of a folder of the collection with key.
func RemoteFolderID(collectionKey, folderKey string) string {
	return ID("folder", collectionKey+"\x00"+folderKey)
}

// Collections returns the collections of remote sources, sorted by name.
func (s *Store) Collections() []Collection {
	s.mu.RLock()
	out := make([]Collection, 0, len(s.collections))
	for _, c := range s.collections {
		out = append(out, *c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Collection returns a remote source's collection by id.
func (s *Store) Collection(id string) (Collection, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.collections[id]
	if !ok {
		return Collection{}, false
	}
	return *c, true
}

// SyncCollection makes the collection c hold exactly folders and items:
// records are derived from c.Key, the folder keys and the items' Remote
// only, so every replica that lists the same server stores the same ids
// and, given the same listing, the same records. Items and folders no
// longer listed are removed. Every item's FolderKey must be among folders.
func (s *Store) SyncCollection(c Collection, folders []RemoteFolder, items []RemoteItem) (ImportStats, error) {
	if c.Key == "" || c.Name == "" {
		return ImportStats{}, errors.New("store: collection needs Key and Name")
	}
	c.ID = CollectionKeyID(c.Key)
	c.Size = 0
	newFolders := map[string]*Folder{}
	for _, f := range folders {
		id := RemoteFolderID(c.Key, f.Key)
		newFolders[id] = &Folder{ID: id, Name: f.Name, ParentID: c.ID, ParentType: "collection",
			Collection: c.ID, Created: f.Created, Updated: f.Created}
	}
	newItems := map[string]*Item{}
	for _, ri := range items {
		fid := RemoteFolderID(c.Key, ri.FolderKey)
		if newFolders[fid] == nil {
			return ImportStats{}, fmt.Errorf("store: item %s in unknown folder %s", ri.Name, ri.FolderKey)
		}
		if ri.Remote == "" || ri.SourceName == "" || ri.Version == "" {
			return ImportStats{}, errors.New("store: remote item needs Remote, SourceName and Version")
		}
		it := &Item{ID: RemoteID(ri.Remote), Name: ri.Name, FolderID: fid, Collection: c.ID,
			SourceName: ri.SourceName, Remote: ri.Remote, Version: ri.Version, Created: ri.Created, Updated: ri.Created}
		newItems[it.ID] = it
	}
	for _, f := range newFolders {
		if f.Updated.After(c.Updated) {
			c.Updated = f.Updated
		}
	}
	if c.Created.IsZero() {
		c.Created = c.Updated
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var goneFolders, goneItems []string
	for id, f := range s.folders {
		if f.Collection == c.ID && newFolders[id] == nil {
			goneFolders = append(goneFolders, id)
		}
	}
	for id, it := range s.items {
		if it.Collection == c.ID && newItems[id] == nil {
			goneItems = append(goneItems, id)
		}
	}
	for id, it := range newItems {
		if old := s.items[id]; old != nil {
			it.Description = old.Description
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, bucketCollections, c.ID, &c); err != nil {
			return err
		}
		for id, f := range newFolders {
			if err := put(tx, bucketFolders, id, f); err != nil {
				return err
			}
		}
		for id, it := range newItems {
			if err := put(tx, bucketItems, id, it); err != nil {
				return err
			}
		}
		for _, id := range goneFolders {
			if err := tx.Bucket(bucketFolders).Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, id := range goneItems {
			if err := tx.Bucket(bucketItems).Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ImportStats{}, fmt.Errorf("store: sync collection %s: %w", c.Name, err)
	}
	s.collections[c.ID] = &c
	for id, f := range newFolders {
		s.folders[id] = f
	}
	for id, it := range newItems {
		s.items[id] = it
	}
	for _, id := range goneFolders {
		delete(s.folders, id)
	}
	for _, id := range goneItems {
		delete(s.items, id)
	}
	return ImportStats{Folders: len(newFolders), Items: len(newItems), Removed: len(goneItems)}, nil
}

// KeepCollections removes the collections whose key is not in keys, with
// their folders and items: a source taken out of the configuration leaves
// nothing behind.
func (s *Store) KeepCollections(keys []string) error {
	keep := map[string]bool{}
	for _, k := range keys {
		keep[CollectionKeyID(k)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cols, folders, items []string
	for id := range s.collections {
		if !keep[id] {
			cols = append(cols, id)
		}
	}
	if len(cols) == 0 {
		return nil
	}
	gone := map[string]bool{}
	for _, id := range cols {
		gone[id] = true
	}
	for id, f := range s.folders {
		if gone[f.Collection] {
			folders = append(folders, id)
		}
	}
	for id, it := range s.items {
		if gone[it.Collection] {
			items = append(items, id)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, d := range []struct {
			b   []byte
			ids []string
		}{{bucketCollections, cols}, {bucketFolders, folders}, {bucketItems, items}} {
			for _, id := range d.ids {
				if err := tx.Bucket(d.b).Delete([]byte(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range cols {
		delete(s.collections, id)
	}
	for _, id := range folders {
		delete(s.folders, id)
	}
	for _, id := range items {
		delete(s.items, id)
	}
	return nil
}
