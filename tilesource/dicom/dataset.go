package dicom

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Tag is a DICOM attribute tag, group in the high 16 bits.
type Tag uint32

// Tags this reader uses.
const (
	tagTransferSyntax      Tag = 0x00020010
	tagImageType           Tag = 0x00080008
	tagSOPClassUID         Tag = 0x00080016
	tagSOPInstanceUID      Tag = 0x00080018
	tagManufacturer        Tag = 0x00080070
	tagModelName           Tag = 0x00081090
	tagStudyUID            Tag = 0x0020000D
	tagSeriesUID           Tag = 0x0020000E
	tagInstanceNumber      Tag = 0x00200013
	tagConcatFrameOffset   Tag = 0x00209228
	tagDimOrgType          Tag = 0x00209311
	tagSamplesPerPixel     Tag = 0x00280002
	tagPhotometric         Tag = 0x00280004
	tagPlanarConfiguration Tag = 0x00280006
	tagNumberOfFrames      Tag = 0x00280008
	tagRows                Tag = 0x00280010
	tagColumns             Tag = 0x00280011
	tagPixelSpacing        Tag = 0x00280030
	tagBitsAllocated       Tag = 0x00280100
	tagBitsStored          Tag = 0x00280101
	tagPixelRepresentation Tag = 0x00280103
	tagICCProfile          Tag = 0x00282000
	tagPixelMeasuresSeq    Tag = 0x00289110
	tagZOffset             Tag = 0x0040074A
	tagFrameTypeSeq        Tag = 0x00400710
	tagImagedVolumeWidth   Tag = 0x00480001
	tagImagedVolumeHeight  Tag = 0x00480002
	tagTotalColumns        Tag = 0x00480006
	tagTotalRows           Tag = 0x00480007
	tagOpticalPathSeq      Tag = 0x00480105
	tagOpticalPathID       Tag = 0x00480106
	tagOpticalPathDesc     Tag = 0x00480107
	tagObjectiveLensPower  Tag = 0x00480112
	tagOpticalPathIDSeq    Tag = 0x00480207
	tagPlanePosSlideSeq    Tag = 0x0048021A
	tagColumnPosition      Tag = 0x0048021E
	tagRowPosition         Tag = 0x0048021F
	tagNumberOpticalPaths  Tag = 0x00480302
	tagTotalFocalPlanes    Tag = 0x00480303
	tagSharedFGSeq         Tag = 0x52009229
	tagPerFrameFGSeq       Tag = 0x52009230
	tagExtendedOffsets     Tag = 0x7FE00001
	tagExtendedLengths     Tag = 0x7FE00002
	tagPixelData           Tag = 0x7FE00010
	tagItem                Tag = 0xFFFEE000
	tagItemDelim           Tag = 0xFFFEE00D
	tagSeqDelim            Tag = 0xFFFEE0DD
)

// Element is one attribute: its VR and value. String values are split at
// backslashes; binary numbers are decoded into Nums; sequences hold Items.
type Element struct {
	Tag   Tag
	VR    string
	Strs  []string
	Nums  []float64
	Raw   []byte
	Items []*Dataset
	// BulkURI is the BulkDataURI of a DICOM JSON element whose value the
	// server left out; Raw stays empty unless the caller fetches it.
	BulkURI string
}

// Dataset is a list of elements sorted by tag.
type Dataset struct {
	Elems []*Element
}

// Get returns the element with tag t, or nil.
func (d *Dataset) Get(t Tag) *Element {
	if d == nil {
		return nil
	}
	i := sort.Search(len(d.Elems), func(i int) bool { return d.Elems[i].Tag >= t })
	if i < len(d.Elems) && d.Elems[i].Tag == t {
		return d.Elems[i]
	}
	return nil
}

// add inserts e, keeping the list sorted (files are sorted already, so
// this is an append in practice).
func (d *Dataset) add(e *Element) {
	n := len(d.Elems)
	if n == 0 || d.Elems[n-1].Tag < e.Tag {
		d.Elems = append(d.Elems, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return d.Elems[i].Tag >= e.Tag })
	if i < n && d.Elems[i].Tag == e.Tag {
		d.Elems[i] = e
		return
	}
	d.Elems = append(d.Elems, nil)
	copy(d.Elems[i+1:], d.Elems[i:])
	d.Elems[i] = e
}

// Strs returns the string values of t.
func (d *Dataset) Strs(t Tag) []string {
	e := d.Get(t)
	if e == nil {
		return nil
	}
	if e.Strs != nil {
		return e.Strs
	}
	if e.Raw != nil {
		return splitValue(e.Raw, true)
	}
	return nil
}

// Str returns the first string value of t, or "".
func (d *Dataset) Str(t Tag) string {
	if s := d.Strs(t); len(s) > 0 {
		return s[0]
	}
	return ""
}

// Floats returns the numeric values of t (binary numbers, IS or DS).
func (d *Dataset) Floats(t Tag) []float64 {
	e := d.Get(t)
	if e == nil {
		return nil
	}
	if e.Nums != nil {
		return e.Nums
	}
	var out []float64
	for _, s := range d.Strs(t) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		out = append(out, f)
	}
	return out
}

// Int returns the first numeric value of t as an int, and whether there is
// one that fits.
func (d *Dataset) Int(t Tag) (int, bool) {
	f := d.Floats(t)
	if len(f) == 0 || f[0] != math.Trunc(f[0]) || math.Abs(f[0]) > 1<<40 {
		return 0, false
	}
	return int(f[0]), true
}

// Seq returns the items of sequence t.
func (d *Dataset) Seq(t Tag) []*Dataset {
	if e := d.Get(t); e != nil {
		return e.Items
	}
	return nil
}

// Bytes returns the raw bytes of t.
func (d *Dataset) Bytes(t Tag) []byte {
	if e := d.Get(t); e != nil {
		return e.Raw
	}
	return nil
}

// stringVRs are the VRs whose values are text.
var stringVRs = map[string]bool{
	"AE": true, "AS": true, "CS": true, "DA": true, "DS": true, "DT": true, "IS": true,
	"LO": true, "LT": true, "PN": true, "SH": true, "ST": true, "TM": true, "UC": true,
	"UI": true, "UR": true, "UT": true,
}

// splitValue turns text bytes into values: trailing padding (space, NUL)
// removed, split at backslashes unless the VR is a single free text.
func splitValue(b []byte, split bool) []string {
	s := strings.TrimRight(string(b), " \x00")
	s = strings.TrimLeft(s, " ")
	if s == "" {
		return []string{}
	}
	if !split {
		return []string{s}
	}
	parts := strings.Split(s, `\`)
	for i := range parts {
		parts[i] = strings.TrimSpace(strings.TrimRight(parts[i], "\x00"))
	}
	return parts
}

// decodeValue fills e's typed value from raw bytes according to its VR.
// Numbers are little endian (the only byte order this reader accepts).
func decodeValue(e *Element, raw []byte) {
	le := binary.LittleEndian
	switch e.VR {
	case "US", "SS", "UL", "SL", "FL", "FD", "AT", "SV", "UV":
	default:
		if stringVRs[e.VR] {
			e.Strs = splitValue(raw, e.VR != "LT" && e.VR != "ST" && e.VR != "UT" && e.VR != "UR")
			return
		}
		e.Raw = raw
		return
	}
	size := map[string]int{"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "SV": 8, "UV": 8}[e.VR]
	n := len(raw) / size
	e.Nums = make([]float64, 0, n)
	for i := range n {
		b := raw[i*size:]
		var v float64
		switch e.VR {
		case "US":
			v = float64(le.Uint16(b))
		case "SS":
			v = float64(int16(le.Uint16(b)))
		case "UL", "AT":
			v = float64(le.Uint32(b))
		case "SL":
			v = float64(int32(le.Uint32(b)))
		case "FL":
			v = float64(math.Float32frombits(le.Uint32(b)))
		case "FD":
			v = math.Float64frombits(le.Uint64(b))
		case "SV":
			v = float64(int64(le.Uint64(b)))
		case "UV":
			v = float64(le.Uint64(b))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		e.Nums = append(e.Nums, v)
	}
}

// implicitVR gives the VR of the tags this reader interprets, for datasets
// in Implicit VR Little Endian. Other tags keep raw bytes ("UN").
var implicitVR = map[Tag]string{
	tagImageType: "CS", tagSOPClassUID: "UI", tagSOPInstanceUID: "UI", tagManufacturer: "LO",
	tagModelName: "LO", tagStudyUID: "UI", tagSeriesUID: "UI", tagInstanceNumber: "IS",
	tagConcatFrameOffset: "UL", tagDimOrgType: "CS", tagSamplesPerPixel: "US",
	tagPhotometric: "CS", tagPlanarConfiguration: "US", tagNumberOfFrames: "IS", tagRows: "US",
	tagColumns: "US", tagPixelSpacing: "DS", tagBitsAllocated: "US", tagBitsStored: "US",
	tagPixelRepresentation: "US", tagICCProfile: "OB", tagPixelMeasuresSeq: "SQ",
	tagZOffset: "DS", tagFrameTypeSeq: "SQ", tagImagedVolumeWidth: "FL",
	tagImagedVolumeHeight: "FL", tagTotalColumns: "UL", tagTotalRows: "UL",
	tagOpticalPathSeq: "SQ", tagOpticalPathID: "SH", tagOpticalPathDesc: "ST",
	tagObjectiveLensPower: "DS", tagOpticalPathIDSeq: "SQ", tagPlanePosSlideSeq: "SQ",
	tagColumnPosition: "SL", tagRowPosition: "SL", tagNumberOpticalPaths: "UL",
	tagTotalFocalPlanes: "UL", tagSharedFGSeq: "SQ", tagPerFrameFGSeq: "SQ",
	tagPixelData: "OW", 0x00089007: "CS",
}
