package pipeline

// Transformed images: a region scaled to an exact size, then mirrored,
// rotated by quarter turns and reduced to grey or black and white, as image
// protocols such as the IIIF Image API ask for. The pixels come from the one
// region path (large_image's getRegion); only the steps after it are here.

import (
	"context"
	"net/http"
	"strconv"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// Qualities of a TransformRequest.
const (
	QualityColor   = ""        // the pixels as the region path makes them
	QualityGray    = "gray"    // one band of ITU-R 601-2 luma
	QualityBitonal = "bitonal" // luma thresholded to black (0) and white (255)
)

// TransformRequest asks for a region of base pixels scaled to exactly
// Width×Height, then mirrored and rotated. The caller resolves the request
// against the image size first: the region lies inside the image and is not
// empty, and the sizes are positive.
type TransformRequest struct {
	Frame int
	// X, Y, W, H is the region in full-resolution pixels.
	X, Y, W, H int
	// Width and Height are the output size before rotation; they may
	// distort the region's aspect ratio or enlarge it.
	Width, Height int
	// Mirror flips the scaled image left to right before rotating it.
	Mirror bool
	// Rotate is the clockwise rotation in degrees: 0, 90, 180 or 270.
	Rotate int
	// Quality is QualityColor, QualityGray or QualityBitonal.
	Quality string
	Encode  EncodeOptions
}

// MaxTransformPixels is the largest output (in pixels) a TransformRequest
// on an image with this pyramid is always accepted for. The region path
// refuses to assemble more than the output-pixel limit, and it reads the level
// with at least the output's resolution (up to twice as fine in each
// direction), or a finer one where the pyramid skips levels
// (preferredLevel), so the limit is divided by the worst case.
func MaxTransformPixels(info *tilesource.Info) int64 {
	finer := 0
	for l := range info.Levels {
		finer = max(finer, preferredLevel(info, l)-l)
	}
	side := int64(2) << finer
	return limits.Get().MaxOutputPixels / (side * side)
}

// SourceInfo returns the metadata of the image loc names (a copy; its
// slices are shared and must not be modified).
func (p *Pipeline) SourceInfo(ctx context.Context, loc Locator) (tilesource.Info, error) {
	var info tilesource.Info
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		info = *src.Info()
		return nil
	})
	return info, err
}

// Transform returns the transformed, encoded region, cached in the tile
// cache under its own key.
func (p *Pipeline) Transform(ctx context.Context, loc Locator, req TransformRequest) (*Result, error) {
	enc, mime, err := encodingFor(loc, req.Encode.Encoding)
	if err != nil {
		return nil, err
	}
	if req.W <= 0 || req.H <= 0 || req.X < 0 || req.Y < 0 || req.Width <= 0 || req.Height <= 0 {
		return nil, tilesource.BadRequest("Invalid region or size")
	}
	if err := checkOutput(req.Width, req.Height); err != nil {
		return nil, err
	}
	outW, outH := req.Width, req.Height
	if req.Rotate%180 != 0 {
		outW, outH = outH, outW
	}
	if err := checkEncodable(enc, req.Encode, outW, outH); err != nil {
		return nil, err
	}
	switch req.Rotate {
	case 0, 90, 180, 270:
	default:
		return nil, tilesource.Errorf(http.StatusNotImplemented, "Only rotations by multiples of 90 degrees are supported")
	}
	switch req.Quality {
	case QualityColor, QualityGray, QualityBitonal:
	default:
		return nil, tilesource.BadRequest("Invalid quality %q", req.Quality)
	}
	key := tilecache.Key(identity(loc), p.areaKind("transform"), strconv.Itoa(req.Frame),
		strconv.Itoa(req.X), strconv.Itoa(req.Y), strconv.Itoa(req.W), strconv.Itoa(req.H),
		strconv.Itoa(req.Width), strconv.Itoa(req.Height), strconv.FormatBool(req.Mirror),
		strconv.Itoa(req.Rotate), req.Quality, encodingKey(enc, req.Encode))
	return p.cachedEncoded(ctx, key, enc, mime, req.Encode, func(ctx context.Context) (*encode.Image, error) {
		l, t := float64(req.X), float64(req.Y)
		r, b := float64(req.X+req.W), float64(req.Y+req.H)
		w, h := req.Width, req.Height
		rr := regionParams{left: &l, top: &t, right: &r, bottom: &b, maxW: &w, maxH: &h, frame: req.Frame,
			pyramid: p.pyramidRegions}
		img, err := p.regionImage(ctx, loc, rr, enc)
		if err != nil {
			return nil, err
		}
		if img == nil {
			return nil, tilesource.BadRequest("The region is empty")
		}
		img = encode.To8Bit(img)
		// The region path keeps the aspect ratio; a distorting size or a
		// rounding difference is one more resize.
		if img.Width != req.Width || img.Height != req.Height {
			if err := p.step(ctx, img.Width*img.Height+req.Width*req.Height, func() error {
				var err error
				img, err = resizeImage(img, req.Width, req.Height)
				return err
			}); err != nil {
				return nil, err
			}
		}
		if req.Mirror {
			img = mirror(img)
		}
		img = rotate(img, req.Rotate)
		switch req.Quality {
		case QualityGray:
			img = luma(img, false)
		case QualityBitonal:
			img = luma(img, true)
		}
		return img, nil
	})
}

// mirror flips an 8-bit image left to right.
func mirror(img *encode.Image) *encode.Image {
	out := encode.NewImage(img.Width, img.Height, img.Bands, img.Format)
	ps := img.PixelSize()
	for y := range img.Height {
		row := img.Pix[y*img.Stride():]
		orow := out.Pix[y*out.Stride():]
		for x := range img.Width {
			copy(orow[(img.Width-1-x)*ps:][:ps], row[x*ps:][:ps])
		}
	}
	return out
}

// rotate turns an image clockwise by deg (0, 90, 180 or 270).
func rotate(img *encode.Image, deg int) *encode.Image {
	if deg == 0 {
		return img
	}
	w, h := img.Width, img.Height
	ow, oh := w, h
	if deg != 180 {
		ow, oh = h, w
	}
	out := encode.NewImage(ow, oh, img.Bands, img.Format)
	ps := img.PixelSize()
	for y := range h {
		for x := range w {
			var ox, oy int
			switch deg {
			case 90:
				ox, oy = h-1-y, x
			case 180:
				ox, oy = w-1-x, h-1-y
			default: // 270
				ox, oy = y, w-1-x
			}
			copy(out.Pix[oy*out.Stride()+ox*ps:][:ps], img.Pix[y*img.Stride()+x*ps:][:ps])
		}
	}
	return out
}

// luma reduces an 8-bit image to one band of ITU-R 601-2 luma (PIL's "L"
// conversion), or to black and white split at the middle grey when bitonal
// is set. Alpha is dropped: grey and bitonal images are opaque.
func luma(img *encode.Image, bitonal bool) *encode.Image {
	out := encode.NewImage(img.Width, img.Height, 1, encode.Uint8)
	n := img.Width * img.Height
	for i := range n {
		s := img.Pix[i*img.Bands : (i+1)*img.Bands]
		var l int
		if len(s) >= 3 {
			l = (int(s[0])*299 + int(s[1])*587 + int(s[2])*114 + 500) / 1000
		} else {
			l = int(s[0])
		}
		if bitonal {
			if l >= 128 {
				l = 255
			} else {
				l = 0
			}
		}
		out.Pix[i] = uint8(l)
	}
	return out
}
