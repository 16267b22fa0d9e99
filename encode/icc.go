package encode

import (
	"bytes"
	"errors"
)

// Rendering intents accepted by ICCToSRGB (large_image's names).
const (
	IntentPerceptual           = "perceptual"
	IntentRelativeColorimetric = "relative_colorimetric"
	IntentSaturation           = "saturation"
	IntentAbsoluteColorimetric = "absolute_colorimetric"
)

// ICCToSRGB converts img from the colour space described by the ICC profile
// to sRGB with the rendering intent ("" means perceptual), as large_image
// does for decoded output of sources that carry a profile. The result has
// img's size, bands and format; alpha passes through. Only 8- and 16-bit
// images are converted; the profile must suit the image (an RGB profile
// for 3 or 4 bands, a grey one for 1 or 2), else an error is returned and
// the caller keeps the untransformed pixels.
func ICCToSRGB(img *Image, profile []byte, intent string) (*Image, error) {
	if len(profile) == 0 {
		return nil, errors.New("encode: empty ICC profile")
	}
	if img == nil || img.Width <= 0 || img.Height <= 0 || img.Bands <= 0 {
		return nil, errors.New("encode: colour transform of an empty image")
	}
	if err := img.check(); err != nil {
		return nil, err
	}
	if img.Format != Uint8 && img.Format != Uint16 {
		return nil, errors.New("encode: colour transform needs 8- or 16-bit samples")
	}
	if intent == "" {
		intent = IntentPerceptual
	}
	return iccToSRGB(img, profile, intent)
}

// iccMarker is the APP2 identifier of an embedded ICC profile.
var iccMarker = []byte("ICC_PROFILE\x00")

// maxICCChunk is the profile bytes one APP2 segment can hold: 65535 minus
// the length field, the identifier and the two sequence bytes.
const maxICCChunk = 65535 - 2 - 12 - 2

// ICCSegments returns the APP2 ICC_PROFILE marker segments that embed the
// profile in a JPEG stream, or nil when the profile is empty or too large
// for the 255 segments the format allows.
func ICCSegments(profile []byte) []byte {
	n := (len(profile) + maxICCChunk - 1) / maxICCChunk
	if n == 0 || n > 255 {
		return nil
	}
	out := make([]byte, 0, len(profile)+n*18)
	for i := range n {
		chunk := profile[i*maxICCChunk : min(len(profile), (i+1)*maxICCChunk)]
		l := 2 + len(iccMarker) + 2 + len(chunk)
		out = append(out, 0xFF, 0xE2, byte(l>>8), byte(l))
		out = append(out, iccMarker...)
		out = append(out, byte(i+1), byte(n))
		out = append(out, chunk...)
	}
	return out
}

// EmbedICC returns a copy of the JPEG stream with the APP2 segments of
// ICCSegments inserted after SOI and any APP0 (JFIF) segment, so that a
// passed-through tile is colour managed by its viewer without decoding.
// A stream that already carries an ICC profile, or does not start with
// SOI, is returned unchanged; so is an empty segment list.
func EmbedICC(jpeg, segments []byte) []byte {
	if len(segments) == 0 || len(jpeg) < 4 || jpeg[0] != 0xFF || jpeg[1] != markerSOI {
		return jpeg
	}
	at := 2
	if hasICC(jpeg[2:]) {
		return jpeg
	}
	// JFIF requires its APP0 right after SOI.
	for at+4 <= len(jpeg) && jpeg[at] == 0xFF && jpeg[at+1] == 0xE0 {
		l := int(jpeg[at+2])<<8 | int(jpeg[at+3])
		if l < 2 || at+2+l > len(jpeg) {
			break
		}
		at += 2 + l
	}
	out := make([]byte, 0, len(jpeg)+len(segments))
	out = append(out, jpeg[:at]...)
	out = append(out, segments...)
	return append(out, jpeg[at:]...)
}

// ExtractICC returns the ICC profile embedded in a JPEG stream's APP2
// segments (chunks joined in sequence order), or nil.
func ExtractICC(jpeg []byte) []byte {
	if len(jpeg) < 4 || jpeg[0] != 0xFF || jpeg[1] != markerSOI {
		return nil
	}
	chunks := map[int][]byte{}
	total := 0
	walkSegments(jpeg[2:], func(m byte, body []byte) {
		if m == 0xE2 && len(body) >= 14 && bytes.Equal(body[:12], iccMarker) {
			chunks[int(body[12])] = body[14:]
			total = int(body[13])
		}
	})
	if total == 0 || len(chunks) != total {
		return nil
	}
	var out []byte
	for i := 1; i <= total; i++ {
		c, ok := chunks[i]
		if !ok {
			return nil
		}
		out = append(out, c...)
	}
	return out
}

func hasICC(b []byte) bool {
	found := false
	walkSegments(b, func(m byte, body []byte) {
		found = found || (m == 0xE2 && bytes.HasPrefix(body, iccMarker))
	})
	return found
}

// walkSegments calls fn for each marker segment before SOS; b starts after
// SOI.
func walkSegments(b []byte, fn func(marker byte, body []byte)) {
	i := 0
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return
		}
		m := b[i+1]
		switch {
		case m == 0xFF:
			i++
			continue
		case m == markerSOI || m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			i += 2
			continue
		case m == markerEOI || m == markerSOS:
			return
		}
		l := int(b[i+2])<<8 | int(b[i+3])
		if l < 2 || i+2+l > len(b) {
			return
		}
		fn(m, b[i+4:i+2+l])
		i += 2 + l
	}
}
