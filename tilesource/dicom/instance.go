package dicom

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// SOP classes.
const (
	sopWSI = "1.2.840.10008.5.1.4.1.1.77.1.6" // VL Whole Slide Microscopy Image Storage
)

// Instance is one DICOM instance of a slide: the attributes the reader
// needs, and where its frames come from.
type Instance struct {
	SOPClassUID, SOPInstanceUID string
	StudyUID, SeriesUID         string
	TransferSyntax              string
	// Flavor is the third value of Image Type: VOLUME, LABEL, OVERVIEW,
	// THUMBNAIL.
	Flavor                  string
	Rows, Cols, Samples     int
	BitsAllocated, PixelRep int
	Planar                  int
	Photometric             string
	Frames                  int
	TotalCols, TotalRows    int
	Sparse                  bool
	ConcatOffset            int
	// Spacing is the pixel spacing in mm (row, column), zero when unknown.
	Spacing [2]float64
	// Paths are the optical path identifiers in the instance's order, and
	// PathNames their descriptions (or identifiers).
	Paths, PathNames []string
	FocalPlanes      int
	ICC              []byte
	Manufacturer     string
	Model            string
	// pos holds, for sparse instances, each frame's tile column and row,
	// local optical path and focal plane indices.
	pos []framePos
	// DS is the instance's dataset (without pixel data), kept for
	// internal metadata.
	DS     *Dataset
	frames FrameReader
}

type framePos struct {
	col, row   int32
	path, zIdx int16
}

// notSlideError reports a DICOM instance of another SOP class.
type notSlideError struct{ class string }

func (e *notSlideError) Error() string {
	return fmt.Sprintf("not a whole-slide image (SOP class %s)", e.class)
}

// NewInstance builds an Instance from a dataset (from a file or DICOM JSON
// metadata), the transfer syntax of its pixel data, and a reader of its
// frames. It checks every size it will later use.
func NewInstance(ds *Dataset, ts string, fr FrameReader) (*Instance, error) {
	in := &Instance{DS: ds, TransferSyntax: ts, frames: fr}
	in.SOPClassUID = ds.Str(tagSOPClassUID)
	if in.SOPClassUID != sopWSI {
		name := in.SOPClassUID
		if n, ok := sopNames[name]; ok {
			name = n + ", " + name
		}
		if name == "" {
			name = "none"
		}
		return nil, &notSlideError{name}
	}
	in.SOPInstanceUID = ds.Str(tagSOPInstanceUID)
	in.StudyUID = ds.Str(tagStudyUID)
	in.SeriesUID = ds.Str(tagSeriesUID)
	in.Manufacturer = ds.Str(tagManufacturer)
	in.Model = ds.Str(tagModelName)
	if it := ds.Strs(tagImageType); len(it) >= 3 {
		in.Flavor = strings.ToUpper(it[2])
	} else {
		in.Flavor = "VOLUME"
	}
	in.Photometric = strings.ToUpper(ds.Str(tagPhotometric))
	var ok bool
	geti := func(t Tag, lo, hi, def int) int {
		v, got := ds.Int(t)
		if !got {
			if def >= 0 {
				return def
			}
			ok = false
			return 0
		}
		if v < lo || v > hi {
			ok = false
		}
		return v
	}
	ok = true
	in.Rows = geti(tagRows, 1, maxFrameSide, -1)
	in.Cols = geti(tagColumns, 1, maxFrameSide, -1)
	in.Samples = geti(tagSamplesPerPixel, 1, 4, 1)
	in.BitsAllocated = geti(tagBitsAllocated, 1, 32, 8)
	in.PixelRep = geti(tagPixelRepresentation, 0, 1, 0)
	in.Planar = geti(tagPlanarConfiguration, 0, 1, 0)
	in.Frames = geti(tagNumberOfFrames, 1, maxFrames, 1)
	in.TotalCols = geti(tagTotalColumns, 1, maxDimension, in.Cols)
	in.TotalRows = geti(tagTotalRows, 1, maxDimension, in.Rows)
	in.FocalPlanes = geti(tagTotalFocalPlanes, 1, 1<<12, 1)
	in.ConcatOffset = geti(tagConcatFrameOffset, 0, maxFrames, 0)
	if !ok {
		return nil, errors.New("missing or invalid image dimensions")
	}
	if in.Rows*in.Cols > maxFramePixels {
		return nil, fmt.Errorf("frames of %dx%d are too large", in.Cols, in.Rows)
	}
	if err := limits.CheckSide("total pixel matrix", int64(in.TotalCols), int64(in.TotalRows)); err != nil {
		return nil, err
	}
	if err := limits.CheckDecoded("frame", int64(in.Cols), int64(in.Rows), int64(in.Samples), int64(max(in.BitsAllocated, 8)/8)); err != nil {
		return nil, err
	}
	if in.BitsAllocated != 8 && in.BitsAllocated != 16 {
		return nil, fmt.Errorf("unsupported bits allocated %d", in.BitsAllocated)
	}
	in.Sparse = strings.EqualFold(ds.Str(tagDimOrgType), "TILED_SPARSE")

	shared := first(ds.Seq(tagSharedFGSeq))
	perFrame := ds.Seq(tagPerFrameFGSeq)
	// Pixel spacing: shared functional groups, else the first frame's, else
	// the top level (some converters put it there).
	sp := first(shared.Seq(tagPixelMeasuresSeq)).Floats(tagPixelSpacing)
	if len(sp) < 2 && len(perFrame) > 0 {
		sp = first(perFrame[0].Seq(tagPixelMeasuresSeq)).Floats(tagPixelSpacing)
	}
	if len(sp) < 2 {
		sp = ds.Floats(tagPixelSpacing)
	}
	if len(sp) >= 2 && sp[0] > 0 && sp[1] > 0 && sp[0] < 1e6 && sp[1] < 1e6 {
		in.Spacing = [2]float64{sp[0], sp[1]}
	}

	for _, op := range ds.Seq(tagOpticalPathSeq) {
		id := op.Str(tagOpticalPathID)
		name := op.Str(tagOpticalPathDesc)
		if name == "" {
			name = id
		}
		in.Paths = append(in.Paths, id)
		in.PathNames = append(in.PathNames, name)
		if in.ICC == nil {
			in.ICC = op.Bytes(tagICCProfile)
		}
	}
	if len(in.Paths) == 0 {
		in.Paths, in.PathNames = []string{""}, []string{""}
	}
	if len(in.Paths) > 1<<12 {
		return nil, errors.New("too many optical paths")
	}

	if in.Sparse {
		if err := in.readPositions(perFrame, shared); err != nil {
			return nil, err
		}
	} else if ds.Get(tagConcatFrameOffset) == nil {
		// TILED_FULL needs a frame for every tile of the first plane
		// (concatenations hold a share of the frames: checked per tile).
		tx, ty := in.TilesAcross()
		if int64(in.Frames) < int64(tx)*int64(ty) {
			return nil, fmt.Errorf("%d frames cannot tile a %dx%d matrix", in.Frames, in.TotalCols, in.TotalRows)
		}
	}
	return in, nil
}

// Paths2 returns the number of optical paths (at least 1).
func (in *Instance) Paths2() int { return max(len(in.Paths), 1) }

// TilesAcross returns the number of frame columns and rows of the total
// pixel matrix.
func (in *Instance) TilesAcross() (int, int) {
	return (in.TotalCols + in.Cols - 1) / in.Cols, (in.TotalRows + in.Rows - 1) / in.Rows
}

// readPositions reads each frame's Plane Position (Slide), optical path and
// focal plane from the per-frame functional groups.
func (in *Instance) readPositions(perFrame []*Dataset, shared *Dataset) error {
	if len(perFrame) != in.Frames {
		return fmt.Errorf("TILED_SPARSE with %d per-frame items for %d frames", len(perFrame), in.Frames)
	}
	pathIdx := map[string]int{}
	for i, p := range in.Paths {
		pathIdx[p] = i
	}
	sharedPath := first(shared.Seq(tagOpticalPathIDSeq)).Str(tagOpticalPathID)
	var zs []float64
	zOf := make([]float64, len(perFrame))
	in.pos = make([]framePos, len(perFrame))
	for i, fg := range perFrame {
		pp := first(fg.Seq(tagPlanePosSlideSeq))
		if pp == nil {
			pp = first(shared.Seq(tagPlanePosSlideSeq))
		}
		c, ok1 := pp.Int(tagColumnPosition)
		r, ok2 := pp.Int(tagRowPosition)
		// Positions are 1-based and should fall on the frame grid.
		if !ok1 || !ok2 || c < 1 || r < 1 || c > in.TotalCols || r > in.TotalRows ||
			(c-1)%in.Cols != 0 || (r-1)%in.Rows != 0 {
			return fmt.Errorf("frame %d: bad plane position", i+1)
		}
		id := first(fg.Seq(tagOpticalPathIDSeq)).Str(tagOpticalPathID)
		if id == "" {
			id = sharedPath
		}
		pi, ok := pathIdx[id]
		if !ok {
			pi = 0
		}
		z := 0.0
		if zv := pp.Floats(tagZOffset); len(zv) > 0 {
			z = zv[0]
		}
		zOf[i] = z
		zs = append(zs, z)
		in.pos[i] = framePos{col: int32((c - 1) / in.Cols), row: int32((r - 1) / in.Rows), path: int16(pi)}
	}
	sort.Float64s(zs)
	uniq := zs[:0]
	for _, z := range zs {
		if len(uniq) == 0 || z != uniq[len(uniq)-1] {
			uniq = append(uniq, z)
		}
	}
	if len(uniq) > 1<<12 {
		return errors.New("too many focal planes")
	}
	for i := range in.pos {
		in.pos[i].zIdx = int16(sort.SearchFloat64s(uniq, zOf[i]))
	}
	in.FocalPlanes = max(len(uniq), 1)
	return nil
}

// frameSize returns the bytes of one native (uncompressed) frame.
func (in *Instance) frameSize() int64 {
	return int64(in.Rows) * int64(in.Cols) * int64(in.Samples) * int64(in.BitsAllocated/8)
}

// mmPerPixel returns the column and row spacing in mm, if known.
func (in *Instance) mmPerPixel() (x, y float64, ok bool) {
	if in.Spacing[0] > 0 {
		return in.Spacing[1], in.Spacing[0], true
	}
	// Fall back on the imaged volume over the pixel matrix.
	w, h := in.DS.Floats(tagImagedVolumeWidth), in.DS.Floats(tagImagedVolumeHeight)
	if len(w) > 0 && len(h) > 0 && w[0] > 0 && h[0] > 0 {
		return w[0] / float64(in.TotalCols), h[0] / float64(in.TotalRows), true
	}
	return 0, 0, false
}

func first(items []*Dataset) *Dataset {
	if len(items) > 0 {
		return items[0]
	}
	return nil
}

// sopNames names the SOP classes a user may drop by mistake.
var sopNames = map[string]string{
	"1.2.840.10008.5.1.4.1.1.20":     "Nuclear Medicine Image Storage",
	"1.2.840.10008.5.1.4.1.1.2":      "CT Image Storage",
	"1.2.840.10008.5.1.4.1.1.4":      "MR Image Storage",
	"1.2.840.10008.5.1.4.1.1.7":      "Secondary Capture Image Storage",
	"1.2.840.10008.5.1.4.1.1.1":      "Computed Radiography Image Storage",
	"1.2.840.10008.5.1.4.1.1.1.1":    "Digital X-Ray Image Storage",
	"1.2.840.10008.5.1.4.1.1.6.1":    "Ultrasound Image Storage",
	"1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image Storage",
	"1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
}
