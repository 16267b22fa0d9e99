package encode

import (
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

// ICCProfileInfo is what large_image reports for a profile in
// internal_metadata's "iccprofiles": Pillow's ImageCms.getProfileInfo,
// stripped — the profile description and the copyright, each present one
// followed by CR LF CR LF — or "present" when both are empty. ok is false
// when the data is not an ICC profile (Pillow cannot open it, and
// large_image leaves it out).
func ICCProfileInfo(profile []byte) (info string, ok bool) {
	tags, ok := iccTags(profile)
	if !ok {
		return "", false
	}
	var parts []string
	for _, sig := range []string{"desc", "cprt"} {
		if t, found := tags[sig]; found {
			if s := iccText(t); s != "" {
				parts = append(parts, s)
			}
		}
	}
	info = strings.TrimSpace(strings.Join(parts, "\r\n\r\n"))
	if info == "" {
		info = "present"
	}
	return info, true
}

// iccTags returns the data of each tag of an ICC profile by signature
// (ICC.1:2010 section 7: a 128-byte header, then the tag table).
func iccTags(p []byte) (map[string][]byte, bool) {
	be := binary.BigEndian
	if len(p) < 132 || string(p[36:40]) != "acsp" {
		return nil, false
	}
	n := int(be.Uint32(p[128:]))
	if n > (len(p)-132)/12 {
		return nil, false
	}
	tags := make(map[string][]byte, n)
	for i := range n {
		e := p[132+12*i:]
		off, size := uint64(be.Uint32(e[4:])), uint64(be.Uint32(e[8:]))
		if off+size > uint64(len(p)) {
			return nil, false
		}
		tags[string(e[:4])] = p[off : off+size]
	}
	return tags, true
}

// iccText reads a text tag the way Little CMS does for Pillow: the ASCII
// part of a textDescriptionType, a textType, or the English (else the
// first) record of a multiLocalizedUnicodeType; up to the first NUL.
func iccText(t []byte) string {
	be := binary.BigEndian
	if len(t) < 8 {
		return ""
	}
	var s string
	switch string(t[:4]) {
	case "desc":
		if len(t) < 12 {
			return ""
		}
		n := uint64(be.Uint32(t[8:]))
		if 12+n > uint64(len(t)) {
			return ""
		}
		s = string(t[12 : 12+n])
	case "text":
		s = string(t[8:])
	case "mluc":
		if len(t) < 16 {
			return ""
		}
		count, recSize := int(be.Uint32(t[8:])), int(be.Uint32(t[12:]))
		if recSize < 12 || count <= 0 || count > (len(t)-16)/recSize {
			return ""
		}
		best := 0
		for i := range count {
			if string(t[16+i*recSize:][:2]) == "en" {
				best = i
				break
			}
		}
		r := t[16+best*recSize:]
		n, off := uint64(be.Uint32(r[4:])), uint64(be.Uint32(r[8:]))
		if off+n > uint64(len(t)) {
			return ""
		}
		u := make([]uint16, n/2)
		for i := range u {
			u[i] = be.Uint16(t[off+2*uint64(i):])
		}
		s = string(utf16.Decode(u))
	default:
		return ""
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return s
}
