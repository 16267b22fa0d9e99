package dicom

import (
	"os"
	"path/filepath"
	"sort"
)

// maxSiblings bounds the directory entries SeriesFiles looks at.
const maxSiblings = 4096

// SeriesFiles returns path and the other DICOM files in its directory that
// belong to the same series (Series Instance UID), sorted. It reads only
// the headers of the files. When path cannot be read as DICOM, or has no
// series UID, it returns just path.
func SeriesFiles(path string) []string {
	uid := seriesUID(path)
	if uid == "" {
		return []string{path}
	}
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []string{path}
	}
	abs, _ := filepath.Abs(path)
	out := []string{path}
	for i, e := range ents {
		if i >= maxSiblings {
			break
		}
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if pa, _ := filepath.Abs(p); pa == abs {
			continue
		}
		if seriesUID(p) == uid {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// seriesUID reads a file's header up to the pixel data and returns its
// Series Instance UID, or "" when it is not DICOM.
func seriesUID(path string) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return ""
	}
	f, err := parse(fh, st.Size(), true)
	if err != nil {
		return ""
	}
	return f.DS.Str(tagSeriesUID)
}
