package tiff

import (
	"context"
	"fmt"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// orientation is a TIFF Orientation tag value (TIFF 6.0, tag 274). Values
// 2–8 are applied to every level, tile and associated image as large_image's
// tiff source applies them (tiff_reader.TiledTiffDirectory._getTileRotated
// and TiffFileTileSource._reorient_numpy_image): the stored pixels are
// flipped vertically, then horizontally, then transposed. Absent, 1 and
// invalid values (such as 0, which libtiff drops) mean "as stored".
type orientation int

func newOrientation(v uint64) orientation {
	if v < 2 || v > 8 {
		return 1
	}
	return orientation(v)
}

// stored reports whether pixels are served as they are stored.
func (o orientation) stored() bool { return o == 1 }

// transposed reports whether stored rows become columns (5–8).
func (o orientation) transposed() bool { return o >= 5 }

// flipX reports whether stored columns are reversed.
func (o orientation) flipX() bool { return o == 2 || o == 3 || o == 6 || o == 7 }

// flipY reports whether stored rows are reversed.
func (o orientation) flipY() bool { return o == 3 || o == 4 || o == 7 || o == 8 }

// size returns the displayed size of a stored w×h area.
func (o orientation) size(w, h int) (int, int) {
	if o.transposed() {
		return h, w
	}
	return w, h
}

// storedRect maps a displayed rectangle of an image stored as sw×sh to the
// stored rectangle that holds its pixels.
func (o orientation) storedRect(sw, sh, x, y, w, h int) (int, int, int, int) {
	if o.transposed() {
		x, y, w, h = y, x, h, w
	}
	if o.flipX() {
		x = sw - x - w
	}
	if o.flipY() {
		y = sh - y - h
	}
	return x, y, w, h
}

// apply returns img as displayed.
func (o orientation) apply(img *encode.Image) *encode.Image {
	if o.stored() {
		return img
	}
	w, h := o.size(img.Width, img.Height)
	out := encode.NewImage(w, h, img.Bands, img.Format)
	ps := img.PixelSize()
	for y := range h {
		for x := range w {
			u, v := x, y
			if o.transposed() {
				u, v = y, x
			}
			if o.flipX() {
				u = img.Width - 1 - u
			}
			if o.flipY() {
				v = img.Height - 1 - v
			}
			copy(out.Pix[(y*w+x)*ps:(y*w+x+1)*ps], img.Pix[(v*img.Width+u)*ps:])
		}
	}
	return out
}

// tileSize returns the displayed tile size of a directory: its stored tile
// (or the virtual tile of a stripped image), transposed when the image is.
func (d *dir) tileSize() (int, int) {
	if !d.tiled {
		return virtualTile, virtualTile
	}
	return d.orient.size(d.tw, d.th)
}

// orientedTile builds displayed tile (x, y) of a directory whose
// orientation is not "as stored" from the stored tiles it covers. Only the
// part inside the image is returned.
func (s *Source) orientedTile(ctx context.Context, d *dir, x, y int) (*encode.Image, error) {
	tw, th := d.tileSize()
	dw, dh := d.orient.size(d.w, d.h)
	x0, y0 := x*tw, y*th
	if x < 0 || y < 0 || x0 >= dw || y0 >= dh {
		return nil, tilesource.ErrXRange
	}
	sx, sy, sw, sh := d.orient.storedRect(d.w, d.h, x0, y0, min(tw, dw-x0), min(th, dh-y0))
	img, err := s.storedArea(ctx, d, sx, sy, sw, sh)
	if err != nil {
		return nil, err
	}
	return d.orient.apply(img), nil
}

// storedArea assembles the stored w×h area at (x, y) of a directory from
// its stored tiles (or the virtual tiles of its strips).
func (s *Source) storedArea(ctx context.Context, d *dir, x, y, w, h int) (*encode.Image, error) {
	gw, gh := virtualTile, virtualTile
	if d.tiled {
		gw, gh = d.tw, d.th
	}
	var out *encode.Image
	for row := y / gh; row*gh < y+h; row++ {
		for col := x / gw; col*gw < x+w; col++ {
			var t *encode.Image
			var err error
			if d.tiled {
				var chunks [][]byte
				if chunks, err = s.readChunks(d, col, row); err == nil {
					t, err = s.decodeChunks(ctx, d, d.tw, d.th, true, chunks, col*d.tw, row*d.th)
				}
			} else {
				t, err = s.stripTile(ctx, d, col, row)
			}
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = encode.NewImage(w, h, t.Bands, t.Format)
			} else if t.Bands != out.Bands || t.Format != out.Format {
				return nil, fmt.Errorf("tile %d,%d has a different pixel layout", col, row)
			}
			// The intersection of the tile with the area, in image coordinates.
			ix0, iy0 := max(x, col*gw), max(y, row*gh)
			ix1, iy1 := min(x+w, col*gw+t.Width), min(y+h, row*gh+t.Height)
			ps := t.PixelSize()
			if ix1 <= ix0 {
				continue
			}
			for r := iy0; r < iy1; r++ {
				src := t.Pix[(r-row*gh)*t.Stride()+(ix0-col*gw)*ps:]
				dst := out.Pix[(r-y)*out.Stride()+(ix0-x)*ps:]
				copy(dst[:(ix1-ix0)*ps], src[:(ix1-ix0)*ps])
			}
		}
	}
	return out, nil
}
