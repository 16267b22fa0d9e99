package girder

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// DICOMwebImport asks for an item that serves a series held by a DICOMweb
// server (POST large_image/dicomweb, or `tileserver import-dicomweb`).
type DICOMwebImport struct {
	// URL is the DICOMweb service root, http or https.
	URL string `json:"url"`
	// Study and Series are the Study and Series Instance UIDs.
	Study  string `json:"study"`
	Series string `json:"series"`
	// FolderID is the folder to put the item in; "" means the root folder.
	FolderID string `json:"folderId"`
	// Name is the item's name; "" means the Series Instance UID.
	Name string `json:"name"`
}

// dicomwebProbe starts the version a series is opened under while it is
// imported, before its real version is known. Each import gets its own, so
// a re-import neither reuses the open source nor the cached instance list
// of an earlier one and so sees added or removed instances.
const dicomwebProbe = "import-"

// ImportDICOMweb checks the request, opens the series once (so an unknown
// series, a server that is down or a series that is not a slide fails here
// rather than on the first tile) and stores its item. Importing the same
// series again updates the item.
//
// The item's version is a hash of the series' SOP Instance UIDs: DICOM
// instances are immutable under their UID, so the series' pixels change
// only when its set of instances does. The version is the same on every
// replica that imports the series, so they share memcached entries;
// importing again picks up added or removed instances.
//
// Only admins may call this: the server fetches whatever URL it is given
// (SSRF), which is why the route requires the admin token. The item lives
// in this server's item database only; replicas get archives from their
// configuration instead (WithDICOMweb), so that they all agree.
func (s *Server) ImportDICOMweb(ctx context.Context, req DICOMwebImport) (store.Item, error) {
	ser := dicomweb.Series{BaseURL: strings.TrimSpace(req.URL), StudyUID: req.Study, SeriesUID: req.Series}
	if err := ser.Validate(); err != nil {
		return store.Item{}, err
	}
	if req.FolderID != "" {
		if err := checkObjectID(req.FolderID); err != nil {
			return store.Item{}, err
		}
		if _, ok := s.store.Folder(req.FolderID); !ok {
			return store.Item{}, validationError("folderId", "No such folder: "+req.FolderID)
		}
	}
	remote := ser.Locator()
	loc := pipeline.Locator{ID: store.RemoteID(remote), Remote: remote, Version: dicomwebProbe + strconv.FormatInt(time.Now().UnixNano(), 36)}
	md, err := s.svc.InternalMetadata(ctx, loc)
	if err != nil {
		return store.Item{}, err
	}
	version, err := seriesVersion(md)
	if err != nil {
		return store.Item{}, &tilesource.Error{Status: http.StatusInternalServerError, Message: "Internal error", Cause: err}
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = ser.SeriesUID
	}
	it, err := s.store.PutRemote(store.Item{Name: name, FolderID: req.FolderID, SourceName: "dicomweb",
		Remote: remote, Version: version})
	if errors.Is(err, store.ErrNoFolder) {
		return store.Item{}, validationError("folderId", "No such folder: "+req.FolderID)
	}
	return it, err
}

// seriesVersion hashes the SOP Instance UIDs listed in a DICOM source's
// internal metadata.
func seriesVersion(md map[string]any) (string, error) {
	b, err := json.Marshal(md["dicom"])
	if err != nil {
		return "", err
	}
	var d struct {
		Instances []struct {
			SOPInstanceUID string
		} `json:"instances"`
	}
	if err := json.Unmarshal(b, &d); err != nil || len(d.Instances) == 0 {
		return "", fmt.Errorf("DICOMweb series metadata lists no instances: %v", err)
	}
	uids := make([]string, len(d.Instances))
	for i, in := range d.Instances {
		uids[i] = in.SOPInstanceUID
	}
	sort.Strings(uids)
	sum := sha256.Sum256([]byte(strings.Join(uids, "\n")))
	return fmt.Sprintf("sop-%x", sum[:12]), nil
}

// dicomwebRoute is POST large_image/dicomweb: a JSON DICOMwebImport body;
// the answer is the item.
func (s *Server) dicomwebRoute(c echo.Context) error {
	var req DICOMwebImport
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		return tilesource.BadRequest("Invalid JSON body.")
	}
	it, err := s.ImportDICOMweb(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, itemJSON(it))
}

// remoteLargeImage is the largeImage object of a remote item: no file; the
// UIDs but not the server address, which stays with the admins.
func remoteLargeImage(it store.Item) map[string]any {
	m := map[string]any{"sourceName": it.SourceName}
	if ser, err := dicomweb.ParseLocator(it.Remote); err == nil {
		d := map[string]any{"study": ser.StudyUID, "series": ser.SeriesUID}
		if ser.Archive != "" {
			d["archive"] = ser.Archive
		}
		m["dicomweb"] = d
	}
	return m
}

// archiveSync keeps one collection per configured DICOMweb archive.
type archiveSync struct {
	archives *dicomweb.Archives
	opt      dicomweb.OpenOptions
	mu       sync.Mutex // one listing at a time
}

// WithDICOMweb makes every configured archive a collection: its studies
// are folders and its whole-slide series items, found with QIDO-RS by
// SyncArchives. opt gives the HTTP client (the archives add their own
// credentials) and the cache of series metadata.
func WithDICOMweb(archives *dicomweb.Archives, opt dicomweb.OpenOptions) Option {
	return func(s *Server) { s.archives = &archiveSync{archives: archives, opt: opt} }
}

// archiveKey is the collection key of an archive.
func archiveKey(name string) string { return "dicomweb:" + name }

// SyncArchives lists every configured archive and makes its collection
// hold what it lists; collections of archives no longer configured are
// removed. An archive that cannot be listed keeps its items until the next
// listing succeeds; the errors are joined. Items new or changed are handed
// to the import hook (warm-up).
func (s *Server) SyncArchives(ctx context.Context) (map[string]store.ImportStats, error) {
	if s.archives == nil {
		return nil, nil
	}
	a := s.archives
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []string
	for _, ar := range a.archives.List() {
		keys = append(keys, archiveKey(ar.Name))
	}
	if err := s.store.KeepCollections(keys); err != nil {
		return nil, err
	}
	out := map[string]store.ImportStats{}
	var errs []error
	for _, ar := range a.archives.List() {
		st, err := s.syncArchive(ctx, ar)
		if err != nil {
			s.log.Error("dicomweb: listing failed", "archive", ar.Name, "err", err)
			errs = append(errs, fmt.Errorf("archive %s: %w", ar.Name, err))
			continue
		}
		out[ar.Name] = st
	}
	return out, errors.Join(errs...)
}

func (s *Server) syncArchive(ctx context.Context, ar dicomweb.Archive) (store.ImportStats, error) {
	found, skipped, err := s.archives.archives.ListSeries(ctx, ar.Name, s.archives.opt)
	if err != nil {
		return store.ImportStats{}, err
	}
	for _, sk := range skipped {
		s.log.Warn("dicomweb: skipping series", "archive", ar.Name, "study", sk.StudyUID, "series", sk.SeriesUID, "reason", sk.Reason)
	}
	folders, items := archiveTree(found)
	key := archiveKey(ar.Name)
	before := map[string]string{}
	for _, it := range s.store.Items(store.ItemQuery{}) {
		if it.Collection == store.CollectionKeyID(key) {
			before[it.ID] = it.Version
		}
	}
	st, err := s.store.SyncCollection(store.Collection{Key: key, Name: ar.Name,
		Description: "DICOMweb archive " + ar.Name}, folders, items)
	if err != nil {
		return st, err
	}
	st.Skipped = len(skipped)
	s.log.Info("dicomweb: listed", "archive", ar.Name, "studies", st.Folders, "series", st.Items,
		"skipped", st.Skipped, "removed", st.Removed)
	if s.bg != nil && s.bg.onImport != nil {
		var changed []store.Item
		for _, ri := range items {
			id := store.RemoteID(ri.Remote)
			if v, ok := before[id]; !ok || v != ri.Version {
				if it, ok := s.store.Item(id); ok {
					changed = append(changed, it)
				}
			}
		}
		if len(changed) > 0 {
			s.bg.onImport(ctx, changed)
		}
	}
	return st, nil
}

// archiveTree turns a listing (sorted by UIDs) into study folders and
// series items. Folders are named by StudyDescription, items by
// SeriesDescription, then StudyDescription, then the UID; a name taken
// twice in one place gets the UID appended, so names stay unique and the
// same on every replica.
func archiveTree(found []dicomweb.SeriesInfo) ([]store.RemoteFolder, []store.RemoteItem) {
	var folders []store.RemoteFolder
	var items []store.RemoteItem
	studyIdx := map[string]int{}
	for _, si := range found {
		if _, ok := studyIdx[si.StudyUID]; ok {
			continue
		}
		studyIdx[si.StudyUID] = len(folders)
		name := si.StudyDescription
		if name == "" {
			name = si.StudyUID
		}
		folders = append(folders, store.RemoteFolder{Key: si.StudyUID, Name: name, Created: si.StudyTime})
	}
	uniqueNames(len(folders), func(i int) *string { return &folders[i].Name },
		func(i int) string { return folders[i].Key }, func(int) string { return "" })
	for _, si := range found {
		name := si.SeriesDescription
		if name == "" {
			name = si.StudyDescription
		}
		if name == "" {
			name = si.SeriesUID
		}
		items = append(items, store.RemoteItem{FolderKey: si.StudyUID, Name: name, SourceName: "dicomweb",
			Remote: si.Locator(), Version: si.Version, Created: si.StudyTime})
	}
	uniqueNames(len(items), func(i int) *string { return &items[i].Name },
		func(i int) string { return seriesOfLocator(items[i].Remote) }, func(i int) string { return items[i].FolderKey })
	return folders, items
}

// uniqueNames appends " (uid)" to every name used more than once in the
// same scope.
func uniqueNames(n int, name func(int) *string, uid, scope func(int) string) {
	count := map[[2]string]int{}
	for i := range n {
		count[[2]string{scope(i), *name(i)}]++
	}
	for i := range n {
		if count[[2]string{scope(i), *name(i)}] > 1 && *name(i) != uid(i) {
			*name(i) += " (" + uid(i) + ")"
		}
	}
}

func seriesOfLocator(loc string) string {
	s, _ := dicomweb.ParseLocator(loc)
	return s.SeriesUID
}

// archiveRetry is how soon a failed listing is tried again (sooner than
// the refresh interval, so an archive that was down at start appears once
// it is up).
const archiveRetry = 30 * time.Second

// RefreshArchives lists the archives now and then every interval until
// ctx is done; with interval 0 only a failed listing is tried again
// (every archiveRetry until one succeeds).
func (s *Server) RefreshArchives(ctx context.Context, interval time.Duration) {
	if s.archives == nil {
		return
	}
	for {
		wait := interval
		if _, err := s.SyncArchives(ctx); err != nil && ctx.Err() == nil {
			if wait == 0 || wait > archiveRetry {
				wait = archiveRetry
			}
			s.log.Warn("dicomweb: listing incomplete; trying again", "in", wait, "err", err)
		}
		if wait <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
