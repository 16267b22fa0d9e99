package tiff

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDump prints the structure of the files named in TIFFDUMP (a
// debugging aid; it does nothing otherwise).
func TestDump(t *testing.T) {
	names := os.Getenv("TIFFDUMP")
	if names == "" {
		t.Skip("set TIFFDUMP to a list of files")
	}
	for _, name := range strings.Fields(names) {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := fh.Stat()
		f, err := Parse(fh, st.Size())
		if err != nil {
			t.Logf("%s: %v", name, err)
			continue
		}
		fmt.Printf("== %s big=%v bo=%v\n", filepath.Base(name), f.BigTIFF, f.ByteOrder)
		f.walk(func(d *IFD, idx int, parent *IFD) {
			fmt.Printf(" IFD@%d chain=%d sub=%v\n", d.Offset, idx, parent != nil)
			for tag, e := range d.Entries {
				s := ""
				if e.Type == typeASCII {
					s = e.String()
					if len(s) > 300 {
						s = s[:300]
					}
				} else if e.Count <= 8 {
					s = fmt.Sprint(e.Floats())
				} else {
					s = fmt.Sprintf("[%d values]", e.Count)
				}
				fmt.Printf("   %d type=%d n=%d %s\n", tag, e.Type, e.Count, s)
			}
		})
		fh.Close()
	}
}
