package encode

import "sync"

// libjpeg's verdict on a stream's header (jpeg_read_header, which
// CheckJPEGHeader runs) depends on nothing but the bytes it reads before
// the first scan: SOI, the table and frame segments and the SOS segment.
// The stored tiles of one pyramid level normally share those bytes
// exactly, so a header libjpeg has accepted is remembered, and a later
// stream starting with the same bytes is accepted without another cgo
// call and libjpeg set-up (the largest part of our own work on a cold
// stored tile). Only acceptances are remembered: a refused header is read
// again every time, as before.

// Bounds of knownHeaders: at most 1024 headers of up to 4 KiB each (a
// level's header is typically 300–700 bytes; larger ones, with an ICC
// profile or EXIF block, are not remembered).
const (
	maxKnownHeaders     = 1024
	maxKnownHeaderBytes = 4 << 10
)

// headerSet is a set of JPEG headers libjpeg has accepted.
type headerSet struct {
	mu sync.RWMutex
	m  map[string]struct{}
}

var knownHeaders = headerSet{m: map[string]struct{}{}}

func (s *headerSet) has(h []byte) bool {
	s.mu.RLock()
	_, ok := s.m[string(h)]
	s.mu.RUnlock()
	return ok
}

func (s *headerSet) add(h []byte) {
	s.mu.Lock()
	if len(s.m) >= maxKnownHeaders {
		// Start again rather than track use: each level relearns its
		// header with one read.
		clear(s.m)
	}
	s.m[string(h)] = struct{}{}
	s.mu.Unlock()
}

// jpegHeaderLen returns the length of a JPEG stream's header: from SOI to
// the end of the first SOS segment, walking the marker segments by their
// lengths. It returns 0 for anything but a plain walk (no SOI, bytes
// between segments, a marker without a length before SOS, a length past
// the end), which leaves the verdict to libjpeg alone.
func jpegHeaderLen(b []byte) int {
	if len(b) < 2 || b[0] != 0xFF || b[1] != markerSOI {
		return 0
	}
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return 0
		}
		m := b[i+1]
		switch {
		case m == 0xFF:
			i++ // a fill byte before a marker
			continue
		case m == 0x00, m == 0x01, m >= 0xD0 && m <= 0xD9:
			return 0
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || n > len(b)-i-2 {
			return 0
		}
		i += 2 + n
		if m == 0xDA {
			return i
		}
	}
	return 0
}
