package tiff

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// qpiRoot is the root element of the XML ImageDescription of every page of
// a PerkinElmer/Akoya QPTIFF file (Vectra Polaris, PhenoImager,
// PhenoCycler).
const qpiRoot = "PerkinElmer-QPI-ImageDescription"

// qpiDescription is the part of a page's QPI description this reader uses.
type qpiDescription struct {
	ImageType   string
	Name        string
	Biomarker   string
	ScanProfile struct {
		Root struct {
			Magnification    float64
			PixelSizeMicrons float64
		} `xml:"root"`
	}
}

// parseQPI parses a page description; ok is false when it is not QPI XML.
// The declaration often says utf-16 although the TIFF string is ASCII, so
// the declared encoding is ignored.
func parseQPI(desc string) (qpiDescription, bool) {
	var q qpiDescription
	if !strings.Contains(desc, "<"+qpiRoot) {
		return q, false
	}
	dec := xml.NewDecoder(strings.NewReader(desc))
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var root struct {
		XMLName xml.Name
		qpiDescription
	}
	if err := dec.Decode(&root); err != nil || root.XMLName.Local != qpiRoot {
		return q, false
	}
	return root.qpiDescription, true
}

// qpiAssociated names QPTIFF's associated page types with large_image's
// associated-image keys.
var qpiAssociated = map[string]string{"thumbnail": "thumbnail", "overview": "macro", "label": "label"}

// setupQPTIFF reads a QPTIFF file: every FullResolution page is a frame
// (a channel, named by its Biomarker, or Name, as large_image's
// _checkForVendorSpecificTags names them), the ReducedResolution pages its
// lower levels, and the Thumbnail, Overview and Label pages associated
// images. It returns false when the file does not follow that layout, so
// that it is read as a plain TIFF.
func (s *Source) setupQPTIFF() (bool, error) {
	var full, reduced []*dir
	var names []string
	for i, d := range s.tf.IFDs {
		q, ok := parseQPI(d.String(tagImageDescription))
		if !ok {
			continue
		}
		dd, err := newDir(d, i)
		if err != nil {
			continue
		}
		switch t := strings.ToLower(q.ImageType); t {
		case "fullresolution":
			if len(full) == 0 {
				s.qpiMag = q.ScanProfile.Root.Magnification
				if mm := q.ScanProfile.Root.PixelSizeMicrons / 1000; mm > 0 {
					s.info.MMX, s.info.MMY = &mm, &mm
				}
			}
			full = append(full, dd)
			name := q.Biomarker
			if name == "" {
				name = q.Name
			}
			names = append(names, name)
		case "reducedresolution":
			reduced = append(reduced, dd)
		default:
			if key := qpiAssociated[t]; key != "" && s.assoc[key] == nil && checkDecodable(dd) == nil {
				s.assoc[key] = dd
			}
		}
	}
	if len(full) == 0 {
		return false, nil
	}
	main := full[0]
	if err := checkDecodable(main); err != nil {
		return false, err
	}
	frames := make([][]*dir, len(full))
	for c, d := range full {
		if d.w != main.w || d.h != main.h || d.tiled != main.tiled || d.tw != main.tw || d.th != main.th ||
			d.format != main.format || d.bands != main.bands || d.orient != main.orient {
			return false, fmt.Errorf("QPTIFF channel %d differs from the first channel", c)
		}
		if err := checkDecodable(d); err != nil {
			return false, err
		}
		frames[c] = s.levelsFor(d, nil)
	}
	// Reduced pages come level by level, one per channel: each goes to the
	// first channel still missing its level (large_image's
	// _initWithTiffTools does the same).
	for _, d := range reduced {
		lv := s.levelsFor(main, []*dir{d})
		for z, l := range lv[:len(lv)-1] {
			if l == nil {
				continue
			}
			for _, f := range frames {
				if f[z] == nil {
					f[z] = d
					break
				}
			}
		}
	}
	// A level is stored only where every channel has it.
	for z := range frames[0] {
		for _, f := range frames {
			if f[z] == nil {
				for _, g := range frames {
					g[z] = nil
				}
				break
			}
		}
	}
	s.frame = frames
	s.setInfo(main, len(frames[0]))
	if len(full) > 1 {
		s.info.Frames = make([]map[string]any, len(full))
		for c := range full {
			s.info.Frames[c] = map[string]any{"IndexC": c}
		}
		if distinctNames(names) {
			s.info.Channels = names
		}
	}
	return true, nil
}
