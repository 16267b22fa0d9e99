// Package detect opens an image file with the reader that fits its content.
// The file name's extension is not trusted: the first bytes decide which
// readers are tried, and in which order.
package detect

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom"
	"github.com/tileserver/tileserver/tilesource/limits"
	"github.com/tileserver/tileserver/tilesource/slide"
	"github.com/tileserver/tileserver/tilesource/tiff"
	"github.com/tileserver/tileserver/tilesource/vipsimage"
)

// Opener opens a file as a source.
type Opener func(path string) (tilesource.Source, error)

// Readers, in the order they are tried for each kind of file. They are
// variables so that tests can observe the order.
var (
	openTIFF  Opener = tiff.Open
	openSlide Opener = slide.Open
	openVips  Opener = vipsimage.Open
	openDICOM Opener = dicom.Open
)

// Kind is what the first bytes of a file say it is.
type Kind int

// File kinds recognised by Sniff.
const (
	KindUnknown Kind = iota
	KindTIFF
	KindImage // JPEG, PNG, WebP, GIF, JP2, J2K
	KindDICOM
)

// sniffLen covers the DICOM preamble (128 bytes) and its "DICM" magic.
const sniffLen = 132

// Sniff classifies a file from its first bytes.
func Sniff(head []byte) Kind {
	has := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case has(0, "II*\x00"), has(0, "MM\x00*"), has(0, "II+\x00"), has(0, "MM\x00+"):
		return KindTIFF
	case has(0, "\xff\xd8\xff"), // JPEG
		has(0, "\x89PNG\r\n\x1a\n"),
		has(0, "RIFF") && has(8, "WEBP"),
		has(0, "GIF87a"), has(0, "GIF89a"),
		has(0, "\x00\x00\x00\x0cjP  \r\n\x87\n"), // JP2 signature box
		has(0, "\xff\x4f\xff\x51"):               // J2K codestream (SOC, SIZ)
		return KindImage
	case has(128, "DICM"):
		return KindDICOM
	}
	return KindUnknown
}

// Open opens path with the first reader that accepts it. TIFF files go to
// the own TIFF reader, then OpenSlide (Aperio JPEG 2000, vendor TIFFs), then
// libvips; plain images to libvips; other files to OpenSlide (MRXS, NDPI, …)
// then libvips. Errors are *tilesource.Error naming the file's base name and
// the problem, never its directory.
func Open(path string) (tilesource.Source, error) {
	name := filepath.Base(path)
	head, err := readHead(path)
	if err != nil {
		return nil, err
	}
	var order []Opener
	switch Sniff(head) {
	case KindTIFF:
		order = []Opener{openTIFF, openSlide, openVips}
	case KindImage:
		order = []Opener{openVips}
	case KindDICOM:
		order = []Opener{openDICOM}
	default:
		if len(head) == 0 {
			return nil, tilesource.BadRequest("%s: the file is empty", name)
		}
		order = []Opener{openSlide, openVips}
	}
	var first error
	for _, open := range order {
		src, err := safeOpen(open, path)
		if err == nil {
			if err := src.Info().CheckSynthesis(); err != nil {
				src.Close()
				return nil, tilesource.BadRequest("%s: %v", name, err)
			}
			return src, nil
		}
		// A reader that found a declared size over a limit, or a broken
		// structure, has read the file: another reader would only trust
		// the same sizes, and the C libraries behind the others may crash
		// on a damaged file.
		if (errors.Is(err, limits.ErrTooLarge) || errors.Is(err, tilesource.ErrDamaged)) && isPublic(err) {
			return nil, withName(err, name)
		}
		// The first specific complaint (a reader that recognised the file
		// but could not serve it) says more than a later "not mine".
		if first == nil && !errors.Is(err, tilesource.ErrNotRecognized) && isPublic(err) {
			first = err
		}
	}
	if first != nil {
		return nil, withName(first, name)
	}
	return nil, &tilesource.Error{Status: http.StatusBadRequest,
		Message: name + ": unsupported or unrecognised image format"}
}

// readHead reads the first bytes of a regular file.
func readHead(path string) ([]byte, error) {
	name := filepath.Base(path)
	st, err := os.Stat(path)
	if err != nil {
		return nil, &tilesource.Error{Status: http.StatusNotFound, Message: name + ": file not found", Cause: err}
	}
	// Reading a FIFO or device could block forever.
	if !st.Mode().IsRegular() {
		return nil, tilesource.BadRequest("%s: not a regular file", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &tilesource.Error{Status: http.StatusForbidden, Message: name + ": cannot open file", Cause: err}
	}
	defer f.Close()
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, &tilesource.Error{Status: http.StatusBadRequest, Message: name + ": cannot read file", Cause: err}
	}
	return head[:n], nil
}

// safeOpen turns a reader's panic into an error, so that one malformed file
// cannot take the server down.
func safeOpen(open Opener, path string) (src tilesource.Source, err error) {
	defer func() {
		if r := recover(); r != nil {
			src, err = nil, fmt.Errorf("reader panicked on %s: %v", filepath.Base(path), r)
		}
	}()
	if open == nil {
		return nil, tilesource.ErrNotRecognized
	}
	return open(path)
}

// isPublic reports whether err carries a client-facing message that is worth
// showing (4xx).
func isPublic(err error) bool {
	var te *tilesource.Error
	return errors.As(err, &te) && te.Status >= 400 && te.Status < 500
}

// withName makes sure a reader's message names the file.
func withName(err error, name string) error {
	var te *tilesource.Error
	if !errors.As(err, &te) {
		return err
	}
	if strings.Contains(te.Message, name) {
		return err
	}
	c := *te
	c.Message = name + ": " + te.Message
	return &c
}

// ErrNeedsFile is returned by OpenReaderAt for an image that only a
// file-based reader (OpenSlide, libvips) may open: the caller needs a local
// copy and Open.
var ErrNeedsFile = errors.New("this image needs a local file (OpenSlide or libvips)")

// OpenReaderAt opens an image read through r (an object in object storage,
// size bytes, named name in messages) with the readers that parse from an
// io.ReaderAt: the own TIFF reader and the DICOM reader. Everything else,
// and TIFFs the own reader refuses (Aperio JPEG 2000, vendor TIFFs that
// OpenSlide or libvips might still read), gives an error wrapping
// ErrNeedsFile. The source does not close r.
func OpenReaderAt(r io.ReaderAt, size int64, name string) (src tilesource.Source, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			src, err = nil, fmt.Errorf("reader panicked on %s: %v", name, rec)
		}
	}()
	head := make([]byte, min(sniffLen, size))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, &tilesource.Error{Status: http.StatusBadGateway, Message: name + ": cannot read object", Cause: err}
	}
	switch Sniff(head) {
	case KindTIFF:
		src, err := tiff.OpenReaderAt(r, size, name)
		if err == nil {
			return src, nil
		}
		if !errors.Is(err, tilesource.ErrNotRecognized) && !isPublic(err) {
			return nil, err // an I/O failure, not the file's fault
		}
		return nil, fmt.Errorf("%s: %w (the TIFF reader said: %v)", name, ErrNeedsFile, err)
	case KindDICOM:
		src, err := dicom.OpenReaders([]dicom.Reader{{R: r, Size: size, Name: name}})
		if err != nil {
			return nil, withName(err, name)
		}
		return src, nil
	}
	if size == 0 {
		return nil, tilesource.BadRequest("%s: the file is empty", name)
	}
	return nil, fmt.Errorf("%s: %w", name, ErrNeedsFile)
}
