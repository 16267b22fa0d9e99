package detect

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExplore(t *testing.T) {
	root := filepath.Join("..", "..", "..", "shared", "testdata")
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if fi.IsDir() || filepath.Ext(p) == ".md" || fi.Name() == "SHA256SUMS" {
			return nil
		}
		src, err := Open(p)
		if err != nil {
			t.Logf("%-50s ERR %v", p[len(root):], err)
			return nil
		}
		i := src.Info()
		t.Logf("%-50s %s %dx%d levels %d", p[len(root):], i.SourceName, i.SizeX, i.SizeY, i.Levels)
		src.Close()
		return nil
	})
}
