package girder

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

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

// dicomwebProbe is the version a series is opened under while it is
// imported, before its real version is known.
const dicomwebProbe = "import"

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
// (SSRF), which is why the route requires the admin token.
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
	loc := pipeline.Locator{ID: store.RemoteID(remote), Remote: remote, Version: dicomwebProbe}
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
		m["dicomweb"] = map[string]any{"study": ser.StudyUID, "series": ser.SeriesUID}
	}
	return m
}
