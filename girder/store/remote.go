package store

import (
	"errors"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNoFolder is returned by PutRemote for a folder id the store does not
// hold.
var ErrNoFolder = errors.New("no such folder")

// TestRemote is the Remote of the item that stands for large_image's
// synthetic test image, so that browsing the embedded default shows it.
const TestRemote = "test"

// PutTestItem stores (or refreshes) the synthetic test image's item in the
// root folder.
func (s *Store) PutTestItem() (Item, error) {
	return s.PutRemote(Item{Name: "test (synthetic image)", Remote: TestRemote, SourceName: "test", Version: "1",
		Description: "large_image's synthetic test source: each tile shows its x, y and z",
		Created:     time.Unix(0, 0).UTC()})
}

// RemoteID is the stable id of the item for a remote source locator, so
// that importing the same series again updates its item.
func RemoteID(remote string) string { return ID("remote", remote) }

// PutRemote stores (or updates) the item of a remote source: Remote,
// SourceName and Version must be set; an empty FolderID means the root
// folder. The id is RemoteID(Remote); Created and Description of an
// existing item are kept, and a Created given for a new item is used
// instead of now. Directory imports leave remote items alone.
func (s *Store) PutRemote(it Item) (Item, error) {
	if it.Remote == "" || it.SourceName == "" || it.Version == "" {
		return Item{}, errors.New("store: remote item needs Remote, SourceName and Version")
	}
	if it.FolderID == "" {
		it.FolderID = ID("folder", "")
	}
	now := time.Now().UTC()
	if !it.Created.IsZero() {
		now = it.Created
	}
	it.ID = RemoteID(it.Remote)
	it.Path, it.FileID, it.Files, it.Size = "", "", nil, 0
	it.Created, it.Updated = now, now
	s.mu.Lock()
	defer s.mu.Unlock()
	var newRoot *Folder
	if _, ok := s.folders[it.FolderID]; !ok {
		if it.FolderID != ID("folder", "") {
			return Item{}, ErrNoFolder
		}
		// Before the first directory import the root folder does not
		// exist yet; the item needs a home.
		newRoot = &Folder{ID: it.FolderID, Name: filepath.Base(s.root), ParentID: CollectionID,
			ParentType: "collection", Created: now, Updated: now}
	}
	if old, ok := s.items[it.ID]; ok {
		it.Created = old.Created
		if it.Description == "" {
			it.Description = old.Description
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if newRoot != nil {
			if err := put(tx, bucketFolders, newRoot.ID, newRoot); err != nil {
				return err
			}
		}
		return put(tx, bucketItems, it.ID, &it)
	})
	if err != nil {
		return Item{}, err
	}
	if newRoot != nil {
		s.folders[newRoot.ID] = newRoot
	}
	s.items[it.ID] = &it
	return it, nil
}
