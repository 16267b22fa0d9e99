package dicom

import (
	"os"
	"strconv"
	"testing"
)

// The JPEG-LS files in testdata/ were made from highdicom's sm_image*.dcm
// with DCMTK 3.6.7 (dcmcjpls, with the interleave option in the name;
// near2 is near-lossless with NEAR=2); rle_* with dcmcrle.
func TestJPEGLSAgainstUncompressed(t *testing.T) {
	rgb := mustOpen(t, td("highdicom/sm_image.dcm"))
	gray := mustOpen(t, td("highdicom/sm_image_grayscale.dcm"))
	cases := []struct {
		file    string
		ref     string
		maxDiff int
	}{
		{td("highdicom/sm_image_jpegls.dcm"), "rgb", 0}, // sample interleaved (CharLS)
		{"testdata/jls_line.dcm", "rgb", 0},
		{"testdata/jls_none.dcm", "rgb", 0},
		{"testdata/jls_near2.dcm", "rgb", 2},
		{"testdata/jls_gray16.dcm", "gray", 0},
		{"testdata/rle_rgb.dcm", "rgb", 0},
		{"testdata/rle_gray16.dcm", "gray", 0},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s := mustOpen(t, c.file)
			ref := rgb
			if c.ref == "gray" {
				ref = gray
			}
			compareAll(t, s, ref, float64(c.maxDiff), c.maxDiff)
		})
	}
}

// TestJPEGLSLarge checks the decoder on real slide texture when DCMTK made
// JPEG-LS copies of raw.dicom (set DICOM_JLS_RAW to a dcmcjpls output and
// DICOM_JLS_NEAR to its NEAR parameter, 0 for lossless).
func TestJPEGLSLarge(t *testing.T) {
	p := os.Getenv("DICOM_JLS_RAW")
	if p == "" {
		t.Skip("DICOM_JLS_RAW not set")
	}
	near, _ := strconv.Atoi(os.Getenv("DICOM_JLS_NEAR"))
	compareAll(t, mustOpen(t, p), mustOpen(t, td("wsi-to-dicom-converter/raw.dicom")), float64(near), near)
}
