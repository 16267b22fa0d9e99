package girder

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource"
)

// girderTime is Girder's timestamp format.
const girderTime = "2006-01-02T15:04:05.000000+00:00"

func fmtTime(t time.Time) string { return t.UTC().Format(girderTime) }

func (s *Server) collectionJSON() map[string]any {
	root, _ := s.store.Folder(store.ID("folder", ""))
	return map[string]any{
		"_id": store.CollectionID, "_modelType": "collection", "name": root.Name,
		"description": "", "public": true, "size": root.Size,
		"created": fmtTime(root.Created), "updated": fmtTime(root.Updated),
	}
}

// remoteCollectionJSON is a collection of a remote source (a DICOMweb
// archive).
func remoteCollectionJSON(c store.Collection) map[string]any {
	return map[string]any{
		"_id": c.ID, "_modelType": "collection", "name": c.Name,
		"description": c.Description, "public": true, "size": c.Size,
		"created": fmtTime(c.Created), "updated": fmtTime(c.Updated),
	}
}

func folderJSON(f store.Folder) map[string]any {
	return map[string]any{
		"_id": f.ID, "_modelType": "folder", "name": f.Name,
		"parentId": f.ParentID, "parentCollection": f.ParentType,
		"baseParentId": f.BaseID(), "baseParentType": "collection",
		"created": fmtTime(f.Created), "updated": fmtTime(f.Updated),
		"description": f.Description, "public": true, "size": f.Size,
	}
}

func itemJSON(it store.Item) map[string]any {
	li := map[string]any{"fileId": it.FileID, "sourceName": it.SourceName}
	if it.Remote != "" {
		li = remoteLargeImage(it)
	}
	return map[string]any{
		"_id": it.ID, "_modelType": "item", "name": it.Name, "folderId": it.FolderID,
		"baseParentId": it.BaseID(), "baseParentType": "collection",
		"created": fmtTime(it.Created), "updated": fmtTime(it.Updated),
		"size": it.Size, "description": it.Description, "meta": map[string]any{},
		"largeImage": li,
	}
}

func fileJSON(f store.File) map[string]any {
	ext := strings.TrimPrefix(path.Ext(f.Name), ".")
	exts := []string{}
	if ext != "" {
		exts = append(exts, ext)
	}
	return map[string]any{
		"_id": f.ID, "_modelType": "file", "name": f.Name, "itemId": f.ItemID,
		"size": f.Size, "mimeType": f.MimeType, "created": fmtTime(f.Created), "exts": exts,
	}
}

// page applies Girder's limit (default 50, 0 = all) and offset.
func page[T any](c echo.Context, all []T) ([]T, error) {
	p := newParams(c)
	limit := p.int("limit", 50)
	offset := p.int("offset", 0)
	if p.err != nil {
		return nil, p.err
	}
	if offset < 0 {
		offset = 0
	}
	if offset >= len(all) {
		return []T{}, nil
	}
	all = all[offset:]
	if limit > 0 && limit < len(all) {
		all = all[:limit]
	}
	return all, nil
}

func validationError(field, msg string) error {
	return &tilesource.Error{Status: http.StatusBadRequest, Message: msg, Type: "validation", Field: field}
}

var errSearchMode = tilesource.BadRequest("Invalid search mode.")

func (s *Server) listCollections(c echo.Context) error {
	out := []any{s.collectionJSON()}
	for _, col := range s.store.Collections() {
		out = append(out, remoteCollectionJSON(col))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getCollection(c echo.Context) error {
	id := c.Param("id")
	if err := checkObjectID(id); err != nil {
		return err
	}
	if id == store.CollectionID {
		return c.JSON(http.StatusOK, s.collectionJSON())
	}
	col, ok := s.store.Collection(id)
	if !ok {
		return validationError("id", "No such collection: "+id)
	}
	return c.JSON(http.StatusOK, remoteCollectionJSON(col))
}

func (s *Server) listFolders(c echo.Context) error {
	parentType, parentID := c.QueryParam("parentType"), c.QueryParam("parentId")
	text, name := c.QueryParam("text"), c.QueryParam("name")
	var out []store.Folder
	switch {
	case parentID != "":
		if err := checkObjectID(parentID); err != nil {
			return err
		}
		switch parentType {
		case "folder", "collection":
			out = s.store.Folders(parentType, parentID)
		case "user":
		default:
			return validationError("parentType", "Invalid value for parentType: \""+parentType+"\".")
		}
		if name != "" {
			out = filter(out, func(f store.Folder) bool { return f.Name == name })
		}
	case text != "":
		out = filter(s.store.AllFolders(), func(f store.Folder) bool {
			return strings.Contains(strings.ToLower(f.Name), strings.ToLower(text))
		})
	default:
		return errSearchMode
	}
	out, err := page(c, out)
	if err != nil {
		return err
	}
	res := make([]map[string]any, 0, len(out))
	for _, f := range out {
		res = append(res, folderJSON(f))
	}
	return c.JSON(http.StatusOK, res)
}

func filter[T any](in []T, keep func(T) bool) []T {
	out := in[:0:0]
	for _, v := range in {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

func (s *Server) getFolder(c echo.Context) error {
	id := c.Param("id")
	if err := checkObjectID(id); err != nil {
		return err
	}
	f, ok := s.store.Folder(id)
	if !ok {
		return validationError("id", "No such folder: "+id)
	}
	return c.JSON(http.StatusOK, folderJSON(f))
}

func (s *Server) listItems(c echo.Context) error {
	q := store.ItemQuery{FolderID: c.QueryParam("folderId"), Text: c.QueryParam("text"), Name: c.QueryParam("name")}
	if q.FolderID == "" && q.Text == "" {
		return errSearchMode
	}
	if q.FolderID != "" {
		if err := checkObjectID(q.FolderID); err != nil {
			return err
		}
		if _, ok := s.store.Folder(q.FolderID); !ok {
			return validationError("id", "No such folder: "+q.FolderID)
		}
	}
	items, err := page(c, s.store.Items(q))
	if err != nil {
		return err
	}
	res := make([]map[string]any, 0, len(items))
	for _, it := range items {
		res = append(res, itemJSON(it))
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) getItem(c echo.Context) error {
	it, err := s.item(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, itemJSON(it))
}

func (s *Server) itemFiles(c echo.Context) error {
	it, err := s.item(c)
	if err != nil {
		return err
	}
	res := []map[string]any{}
	for _, f := range s.store.ItemFiles(it.ID) {
		res = append(res, fileJSON(f))
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) file(c echo.Context) (store.File, error) {
	id := c.Param("id")
	if err := checkObjectID(id); err != nil {
		return store.File{}, err
	}
	f, ok := s.store.File(id)
	if !ok {
		return f, validationError("id", "No such file: "+id)
	}
	return f, nil
}

func (s *Server) getFile(c echo.Context) error {
	f, err := s.file(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, fileJSON(f))
}

// downloadFile streams a file's bytes; http.ServeContent handles Range and
// conditional requests.
func (s *Server) downloadFile(c echo.Context) error {
	f, err := s.file(c)
	if err != nil {
		return err
	}
	real, fi, err := s.store.Resolve(f.Path)
	if err != nil {
		return &tilesource.Error{Status: http.StatusNotFound, Message: "File not available: " + f.ID, Cause: err}
	}
	fh, err := os.Open(real)
	if err != nil {
		return &tilesource.Error{Status: http.StatusNotFound, Message: "File not available: " + f.ID, Cause: err}
	}
	defer fh.Close()
	disp := c.QueryParam("contentDisposition")
	if disp != "inline" {
		disp = "attachment"
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, f.MimeType)
	h.Set("Content-Disposition", dispositionHeader(disp, f.Name))
	http.ServeContent(c.Response(), c.Request(), f.Name, fi.ModTime(), fh)
	return nil
}

func (s *Server) sources(c echo.Context) error {
	if l, ok := s.svc.(SourceLister); ok {
		return c.JSON(http.StatusOK, l.Sources())
	}
	return c.JSON(http.StatusOK, defaultSources)
}

// defaultSources describes the readers and their extension priorities (as
// large_image's /large_image/sources lists them; lower is preferred) when
// the Service does not list its own.
var defaultSources = map[string]any{
	"tiff": map[string]any{
		"extensions": map[string]int{"default": 3, "tif": 1, "tiff": 1, "ptif": 1, "ptiff": 1, "qptiff": 1, "svs": 4},
		"mimeTypes":  map[string]int{"default": 3, "image/tiff": 3, "image/x-tiff": 3, "image/x-ptif": 1},
	},
	"openslide": map[string]any{
		"extensions": map[string]int{"default": 4, "czi": 1, "mrxs": 1, "ndpi": 1, "svslide": 1, "svs": 3, "vms": 3, "vmu": 3, "dcm": 4, "tif": 4, "tiff": 4, "bif": 5, "ini": 5, "scn": 5},
		"mimeTypes":  map[string]int{"default": 4, "image/mirax": 1, "application/dicom": 4, "image/tiff": 4, "image/x-tiff": 4},
	},
	"ometiff": map[string]any{
		"extensions": map[string]int{"default": 5, "ome": 1, "tif": 4, "tiff": 4},
		"mimeTypes":  map[string]int{"default": 5, "image/tiff": 4, "image/x-tiff": 4},
	},
	"dicom": map[string]any{
		"extensions": map[string]int{"default": 5, "dcm": 1, "dic": 1, "dicom": 1},
		"mimeTypes":  map[string]int{"default": 5, "application/dicom": 1},
	},
	"vips": map[string]any{
		"extensions": map[string]int{"default": 5},
		"mimeTypes":  map[string]int{"default": 5},
	},
	"test": map[string]any{
		"extensions": map[string]int{"default": 12},
		"mimeTypes":  map[string]int{"default": 12},
	},
}

// adminToken reads the token a client sent.
func adminToken(c echo.Context) string {
	if t := c.Request().Header.Get("Girder-Token"); t != "" {
		return t
	}
	return c.QueryParam("token")
}

var (
	errLoggedOut = &tilesource.Error{Status: http.StatusUnauthorized, Message: "You must be logged in.", Type: "access"}
	errNotAdmin  = &tilesource.Error{Status: http.StatusForbidden, Message: "Administrator access required.", Type: "access"}
)

// requireAdmin lets only holders of the admin token through: no token is a
// 401 and a wrong one a 403, as Girder answers anonymous and non-admin users.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t := adminToken(c)
		if t == "" {
			return errLoggedOut
		}
		if s.cfg.AdminToken == "" || !constantTimeEqual(t, s.cfg.AdminToken) {
			return errNotAdmin
		}
		return next(c)
	}
}

func (s *Server) importRoute(c echo.Context) error {
	sub := c.QueryParam("path")
	if sub == "" && c.Request().ContentLength != 0 && strings.HasPrefix(c.Request().Header.Get(echo.HeaderContentType), echo.MIMEApplicationJSON) {
		var body struct {
			Path string `json:"path"`
		}
		if err := c.Bind(&body); err != nil {
			return tilesource.BadRequest("Invalid JSON body.")
		}
		sub = body.Path
	}
	st, err := s.Import(c.Request().Context(), sub)
	if errors.Is(err, store.ErrBadImportPath) {
		return &tilesource.Error{Status: http.StatusBadRequest, Message: "Invalid import path.", Type: "validation", Field: "path"}
	}
	if err != nil {
		return err
	}
	res := importResult{ImportStats: st}
	if sub == "" && s.archives != nil {
		// A full import lists the DICOMweb archives again too.
		res.Archives, err = s.SyncArchives(c.Request().Context())
		if err != nil {
			return &tilesource.Error{Status: http.StatusBadGateway, Message: "DICOMweb archive listing failed", Cause: err}
		}
	}
	return c.JSON(http.StatusOK, res)
}

// importResult is the answer of PUT large_image/import: the slide root's
// counts, and each DICOMweb archive's after a full import.
type importResult struct {
	store.ImportStats
	Archives map[string]store.ImportStats `json:"archives,omitempty"`
}

func (s *Server) cacheInfo(c echo.Context) error {
	info := s.cache.Info(c.Request().Context())
	s.backgroundInfo(info)
	info["requests"] = s.http.snapshot()
	if s.work != nil {
		info["work"] = s.work.Stats()
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) cacheClear(c echo.Context) error {
	ctx := c.Request().Context()
	// memcached may be shared by replicas: flush it only when asked.
	memcached := newParams(c).bool("memcached")
	before := s.cache.Info(ctx)
	if err := s.cache.Clear(ctx, memcached); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"cacheCleared": time.Now().UTC().Format(girderTime),
		"before":       before,
		"after":        s.cache.Info(ctx),
	})
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
