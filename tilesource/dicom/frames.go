package dicom

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameReader reads the stored bytes of one frame of an instance (index
// from 0) and says in which transfer syntax they are encoded. It is safe
// for concurrent use.
type FrameReader interface {
	ReadFrame(ctx context.Context, index int) (data []byte, transferSyntax string, err error)
}

// fileFrames reads frames from a file through its pixel data index.
type fileFrames struct {
	ra     io.ReaderAt
	ts     string
	frags  []fragment
	starts []int32 // frame i is frags[starts[i]:starts[i+1]]
	// Native pixel data: frame i at off + i*frameSize.
	native    bool
	off       int64
	frameSize int64
	frames    int
}

// maxFrameBytes bounds one frame read from a file or a server.
const maxFrameBytes = 256 << 20

func (f *fileFrames) ReadFrame(ctx context.Context, i int) ([]byte, string, error) {
	if i < 0 || i >= f.frames {
		return nil, "", fmt.Errorf("frame %d out of range", i)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if f.native {
		if f.frameSize > maxFrameBytes {
			return nil, "", errors.New("frame too large")
		}
		b := make([]byte, f.frameSize)
		if _, err := f.ra.ReadAt(b, f.off+int64(i)*f.frameSize); err != nil {
			return nil, "", err
		}
		return b, f.ts, nil
	}
	frs := f.frags[f.starts[i]:f.starts[i+1]]
	var n int64
	for _, fr := range frs {
		n += fr.n
	}
	if n > maxFrameBytes {
		return nil, "", errors.New("frame too large")
	}
	b := make([]byte, n)
	p := int64(0)
	for _, fr := range frs {
		if _, err := f.ra.ReadAt(b[p:p+fr.n], fr.off); err != nil {
			return nil, "", err
		}
		p += fr.n
	}
	return b, f.ts, nil
}

// indexFrames works out where each of n frames is in f's pixel data:
// native frames by arithmetic; encapsulated frames by the extended or
// basic offset table, one fragment per frame, or by walking the fragments
// and starting a frame at each one that begins a codestream.
func indexFrames(ra io.ReaderAt, f *File, n int, frameSize int64) (*fileFrames, error) {
	p := &f.pixel
	ff := &fileFrames{ra: ra, ts: f.TS, frames: n}
	if !p.present {
		return nil, errors.New("no pixel data")
	}
	if !p.encapsulated {
		if frameSize <= 0 || int64(n) > p.n/frameSize {
			return nil, fmt.Errorf("pixel data holds %d bytes, %d frames of %d bytes expected", p.n, n, frameSize)
		}
		ff.native, ff.off, ff.frameSize = true, p.off, frameSize
		return ff, nil
	}
	if len(p.frags) == 0 {
		return nil, errors.New("no pixel data fragments")
	}
	// Offsets in both tables count from the first fragment's item tag.
	base := p.frags[0].off - 8
	var offsets []uint64
	if eot := f.DS.Bytes(tagExtendedOffsets); len(eot) >= 8 && len(eot)%8 == 0 {
		for i := 0; i+8 <= len(eot) && len(offsets) <= maxOffsetList; i += 8 {
			offsets = append(offsets, binary.LittleEndian.Uint64(eot[i:]))
		}
	} else if len(p.bot) > 0 {
		for _, o := range p.bot {
			offsets = append(offsets, uint64(o))
		}
	}
	switch {
	case len(offsets) == n:
		ff.starts = make([]int32, 0, n+1)
		j := 0
		for i, o := range offsets {
			for j < len(p.frags) && uint64(p.frags[j].off-8-base) < o {
				j++
			}
			if j == len(p.frags) || uint64(p.frags[j].off-8-base) != o || (i > 0 && int32(j) <= ff.starts[i-1]) {
				return nil, fmt.Errorf("offset table entry %d does not start a fragment", i)
			}
			ff.starts = append(ff.starts, int32(j))
		}
		if ff.starts[0] != 0 {
			return nil, errors.New("offset table does not start at the first fragment")
		}
		ff.starts = append(ff.starts, int32(len(p.frags)))
	case len(p.frags) == n:
		ff.starts = make([]int32, n+1)
		for i := range ff.starts {
			ff.starts[i] = int32(i)
		}
	default:
		var head [4]byte
		for j, fr := range p.frags {
			if fr.n < 4 {
				continue
			}
			if _, err := ra.ReadAt(head[:], fr.off); err != nil {
				return nil, err
			}
			if startsCodestream(head[:]) {
				if len(ff.starts) == n {
					return nil, fmt.Errorf("more than %d frames in the pixel data", n)
				}
				ff.starts = append(ff.starts, int32(j))
			}
		}
		if len(ff.starts) != n || ff.starts[0] != 0 {
			return nil, fmt.Errorf("found %d frames in the pixel data, %d expected", len(ff.starts), n)
		}
		ff.starts = append(ff.starts, int32(len(p.frags)))
	}
	ff.frags = p.frags
	return ff, nil
}

// startsCodestream reports whether b begins a JPEG, JPEG-LS, JPEG 2000
// codestream or a JP2 file.
func startsCodestream(b []byte) bool {
	return len(b) >= 4 && ((b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) ||
		(b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51) ||
		(b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0x0C))
}
