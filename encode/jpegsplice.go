package encode

// JPEG markers used when splicing abbreviated TIFF tiles.
const (
	markerSOI   = 0xD8
	markerEOI   = 0xD9
	markerSOS   = 0xDA
	markerAPP14 = 0xEE
)

// adobeRGB is an Adobe APP14 segment with transform 0: it tells decoders that
// a three-component stream is RGB, not YCbCr.
var adobeRGB = []byte{
	0xFF, markerAPP14, 0x00, 0x0E, // marker, segment length 14
	'A', 'd', 'o', 'b', 'e',
	0x00, 0x64, // version 100
	0x00, 0x00, // flags0
	0x00, 0x00, // flags1
	0x00, // transform: 0 = no colour transform
}

// SpliceJPEG turns an abbreviated JPEG tile from a TIFF file into a complete
// JPEG stream: SOI, the JPEGTables segments (without their SOI and EOI),
// then the tile's own segments and entropy-coded data (without its SOI).
// When rgb is true (TIFF Photometric RGB) and neither stream carries an
// Adobe APP14 marker, one with transform 0 is inserted right after SOI so
// that decoders do not apply a YCbCr-to-RGB conversion (Aperio stores
// RGB-coded JPEG without saying so). A tile that does not start with SOI is
// returned with SOI prepended; a missing EOI is appended.
func SpliceJPEG(tables, tile []byte, rgb bool) []byte {
	tables = trimSOI(tables)
	if n := len(tables); n >= 2 && tables[n-2] == 0xFF && tables[n-1] == markerEOI {
		tables = tables[:n-2]
	}
	tile = trimSOI(tile)
	addAdobe := rgb && !hasAdobe(tables) && !hasAdobe(tile)
	needEOI := len(tile) < 2 || tile[len(tile)-2] != 0xFF || tile[len(tile)-1] != markerEOI
	n := 2 + len(tables) + len(tile)
	if addAdobe {
		n += len(adobeRGB)
	}
	if needEOI {
		n += 2
	}
	out := make([]byte, 0, n)
	out = append(out, 0xFF, markerSOI)
	if addAdobe {
		out = append(out, adobeRGB...)
	}
	out = append(out, tables...)
	out = append(out, tile...)
	if needEOI {
		out = append(out, 0xFF, markerEOI)
	}
	return out
}

// trimSOI drops a leading SOI marker.
func trimSOI(b []byte) []byte {
	if len(b) >= 2 && b[0] == 0xFF && b[1] == markerSOI {
		return b[2:]
	}
	return b
}

// HasAdobe reports whether the marker segments before the first SOS (or the
// end of the data) include an Adobe APP14 segment. b starts after SOI.
func HasAdobe(b []byte) bool { return hasAdobe(b) }

func hasAdobe(b []byte) bool {
	i := 0
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return false // not at a marker: stop rather than guess
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == markerSOI || m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			i += 2 // standalone markers
			continue
		case m == markerEOI || m == markerSOS:
			return false
		}
		l := int(b[i+2])<<8 | int(b[i+3])
		if l < 2 || i+2+l > len(b) {
			return false
		}
		if m == markerAPP14 && l >= 7 && string(b[i+4:i+9]) == "Adobe" {
			return true
		}
		i += 2 + l
	}
	return false
}
