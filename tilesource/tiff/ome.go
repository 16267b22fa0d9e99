package tiff

import (
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// omeXML is the part of the OME model this reader needs.
type omeXML struct {
	Images []struct {
		Pixels struct {
			SizeX, SizeY, SizeC, SizeZ, SizeT int     `xml:",attr"`
			DimensionOrder                    string  `xml:",attr"`
			PhysicalSizeX                     float64 `xml:",attr"`
			PhysicalSizeY                     float64 `xml:",attr"`
			PhysicalSizeXUnit                 string  `xml:",attr"`
			PhysicalSizeYUnit                 string  `xml:",attr"`
			Channels                          []struct {
				Name            string `xml:",attr"`
				SamplesPerPixel int    `xml:",attr"`
			} `xml:"Channel"`
			TiffData []struct {
				IFD        *int `xml:",attr"`
				FirstC     *int `xml:",attr"`
				FirstZ     *int `xml:",attr"`
				FirstT     *int `xml:",attr"`
				PlaneCount *int `xml:",attr"`
			} `xml:"TiffData"`
		} `xml:"Pixels"`
	} `xml:"Image"`
}

// omeUnitMM converts OME length units to millimetres.
var omeUnitMM = map[string]float64{
	"": 1e-3, "µm": 1e-3, "um": 1e-3, "nm": 1e-6, "mm": 1, "cm": 10, "m": 1000, "Å": 1e-7,
}

// maxOMEPlanes caps the planes described by the XML.
const maxOMEPlanes = 1 << 16

// setupOME reads the first OME image: its planes become frames, each with
// the chain IFD of the plane at full resolution and its SubIFDs as lower
// levels. It returns false when the XML does not describe the file usably,
// so that the file is read as a plain TIFF.
func (s *Source) setupOME(desc string) (bool, error) {
	var doc omeXML
	if err := xml.Unmarshal([]byte(desc), &doc); err != nil || len(doc.Images) == 0 {
		return false, nil
	}
	px := doc.Images[0].Pixels
	sc, sz, st := max(px.SizeC, 1), max(px.SizeZ, 1), max(px.SizeT, 1)
	// Channels with several samples (RGB) are stored as one plane.
	if len(px.Channels) > 0 && px.Channels[0].SamplesPerPixel > 1 && len(px.Channels) < sc {
		sc = len(px.Channels)
	}
	if sc*sz*st > maxOMEPlanes || sc <= 0 || sz <= 0 || st <= 0 {
		return false, errors.New("too many OME planes")
	}
	order := strings.ToUpper(px.DimensionOrder)
	if len(order) != 5 || !strings.HasPrefix(order, "XY") {
		order = "XYCZT"
	}
	sizes := map[byte]int{'C': sc, 'Z': sz, 'T': st}
	// planeIndex enumerates planes in DimensionOrder (first letter fastest).
	planeIndex := func(c, z, t int) int {
		pos := map[byte]int{'C': c, 'Z': z, 'T': t}
		idx, stride := 0, 1
		for i := 2; i < 5; i++ {
			idx += pos[order[i]] * stride
			stride *= sizes[order[i]]
		}
		return idx
	}
	n := sc * sz * st
	ifdOf := make([]int, n)
	for i := range ifdOf {
		ifdOf[i] = -1
	}
	if len(px.TiffData) == 0 {
		for i := range ifdOf {
			ifdOf[i] = i
		}
	}
	// labelled[p] lists the axes a single-plane TiffData entry names
	// (FirstC, FirstZ, FirstT): large_image's frames carry an Index key for
	// each, even for an axis of size 1.
	labelled := make([][3]bool, n)
	for _, td := range px.TiffData {
		start := 0
		if td.IFD != nil {
			start = *td.IFD
		}
		count := n
		if td.PlaneCount != nil {
			count = *td.PlaneCount
		} else if td.IFD != nil {
			count = 1
		}
		fc, fz, ft := intOr0(td.FirstC), intOr0(td.FirstZ), intOr0(td.FirstT)
		if fc >= sc || fz >= sz || ft >= st || fc < 0 || fz < 0 || ft < 0 {
			continue
		}
		p0 := planeIndex(fc, fz, ft)
		if count == 1 {
			labelled[p0] = [3]bool{td.FirstC != nil, td.FirstZ != nil, td.FirstT != nil}
		}
		for k := 0; k < count && p0+k < n; k++ {
			ifdOf[p0+k] = start + k
		}
	}
	// Frames are numbered in file order (ascending IFD), as large_image's
	// ometiff source numbers them: its frame list is the TiffData (or
	// Plane) list, which writers emit in IFD order.
	type plane struct{ c, z, t, ifd, index int }
	planes := make([]plane, 0, n)
	for t := 0; t < st; t++ {
		for z := 0; z < sz; z++ {
			for c := 0; c < sc; c++ {
				idx := ifdOf[planeIndex(c, z, t)]
				if idx < 0 || idx >= len(s.tf.IFDs) {
					return false, fmt.Errorf("OME plane C=%d Z=%d T=%d has no image directory", c, z, t)
				}
				planes = append(planes, plane{c, z, t, idx, planeIndex(c, z, t)})
			}
		}
	}
	sort.SliceStable(planes, func(i, j int) bool { return planes[i].ifd < planes[j].ifd })
	var frames [][]*dir
	var meta []map[string]any
	for _, p := range planes {
		main, err := newDir(s.tf.IFDs[p.ifd], p.ifd)
		if err != nil {
			return false, err
		}
		var subs []*dir
		for _, sd := range s.tf.IFDs[p.ifd].SubIFDs {
			if d, err := newDir(sd, -1); err == nil {
				subs = append(subs, d)
			}
		}
		frames = append(frames, s.levelsFor(main, subs))
		f := map[string]any{}
		named := labelled[p.index]
		if sc > 1 || named[0] {
			f["IndexC"] = p.c
		}
		if sz > 1 || named[1] {
			f["IndexZ"] = p.z
		}
		if st > 1 || named[2] {
			f["IndexT"] = p.t
		}
		meta = append(meta, f)
	}
	main := frames[0][len(frames[0])-1]
	for i, f := range frames {
		m := f[len(f)-1]
		if len(f) != len(frames[0]) || m.w != main.w || m.h != main.h || m.bands != main.bands || m.format != main.format {
			return false, fmt.Errorf("OME plane %d differs from the first plane", i)
		}
		if err := checkDecodable(m); err != nil {
			return false, err
		}
	}
	s.frame = frames
	s.setInfo(main, len(frames[0]))
	s.info.SourceName = "ometiff"
	if len(meta) > 1 {
		s.info.Frames = meta
	}
	s.info.Channels = nil
	for _, ch := range px.Channels {
		s.info.Channels = append(s.info.Channels, ch.Name)
	}
	// As large_image: names only when every channel has a distinct one.
	if len(s.info.Channels) != sc || !distinctNames(s.info.Channels) {
		s.info.Channels = nil
	}
	if px.PhysicalSizeX > 0 && px.PhysicalSizeY > 0 {
		ux, okx := omeUnitMM[px.PhysicalSizeXUnit]
		uy, oky := omeUnitMM[px.PhysicalSizeYUnit]
		if okx && oky {
			mx, my := px.PhysicalSizeX*ux, px.PhysicalSizeY*uy
			s.info.MMX, s.info.MMY = &mx, &my
		}
	}
	return true, nil
}

// distinctNames reports whether every name is set and unique.
func distinctNames(v []string) bool {
	seen := map[string]bool{}
	for _, s := range v {
		if s == "" || seen[s] {
			return false
		}
		seen[s] = true
	}
	return true
}

func intOr0(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
