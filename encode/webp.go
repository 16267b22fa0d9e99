package encode

import "encoding/binary"

// WebP extended-format (VP8X) feature flags (the WebP container
// specification).
const (
	webpFlagAnimation = 0x02
	webpFlagXMP       = 0x04
	webpFlagEXIF      = 0x08
	webpFlagAlpha     = 0x10
	webpFlagICC       = 0x20
)

// stripWebPMetadata drops the EXIF and XMP chunks libvips writes into a
// WebP file even when told to strip metadata (8.14 adds its resolution and
// orientation EXIF), and the VP8X header when no other extended feature
// needs it: what remains is what Pillow writes for the same pixels, two
// hundred bytes smaller. A stream it cannot parse as RIFF chunks is
// returned unchanged.
func stripWebPMetadata(b []byte) []byte {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return b
	}
	type chunk struct{ tag, data []byte }
	var chunks []chunk
	for rest := b[12:]; len(rest) > 0; {
		if len(rest) < 8 {
			return b
		}
		n := int(binary.LittleEndian.Uint32(rest[4:8]))
		padded := n + n&1
		if n < 0 || 8+padded > len(rest) {
			return b
		}
		chunks = append(chunks, chunk{rest[0:4], rest[8 : 8+n]})
		rest = rest[8+padded:]
	}
	out := make([]byte, 12, len(b))
	copy(out, b[:12])
	for _, c := range chunks {
		switch string(c.tag) {
		case "EXIF", "XMP ":
			continue
		case "VP8X":
			if len(c.data) < 1 {
				return b
			}
			flags := c.data[0] &^ (webpFlagEXIF | webpFlagXMP)
			if flags&(webpFlagAnimation|webpFlagAlpha|webpFlagICC) == 0 {
				continue // the simple format needs no header
			}
			data := append([]byte{flags}, c.data[1:]...)
			c = chunk{c.tag, data}
		}
		out = append(out, c.tag...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(c.data)))
		out = append(out, c.data...)
		if len(c.data)&1 == 1 {
			out = append(out, 0)
		}
	}
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
	return out
}
