package pipeline

// Request-declared sizes checked against the configured limits (package
// limits) before anything is allocated or looped over: one request must not
// be able to take gigabytes or a core for minutes.

import (
	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// checkOutput refuses an image of w×h pixels (an output, a fill canvas or
// an intermediate it is made from) larger than the output-pixel limit.
func checkOutput(w, h int) error {
	if limits.OutputPixelsOK(int64(w), int64(h)) {
		return nil
	}
	return tilesource.BadRequest("Value Error: The requested image of %d×%d pixels is larger than the limit of %d pixels.",
		w, h, limits.Get().MaxOutputPixels)
}

// checkLoop refuses a request-driven count n (frames, bands, strides) over
// the loop limit; what names the count for the message.
func checkLoop(what string, n int) error {
	return checkCount(what, n, limits.Get().MaxLoop)
}

// checkCount refuses n over m; what names the count for the message.
func checkCount(what string, n, m int) error {
	if n > m {
		return tilesource.BadRequest("Value Error: %s (%d) is over the limit of %d.", what, n, m)
	}
	return nil
}

// checkEncodable refuses an output the encoder cannot write: an unknown
// TIFF compression, or more pixels a side than the format allows.
func checkEncodable(enc string, o EncodeOptions, w, h int) error {
	if err := encode.CheckOptions(encodeOptions(enc, o), w, h); err != nil {
		return tilesource.BadRequest("Value Error: %s.", err.Error())
	}
	return nil
}
