package sdkcopy

import (
	"archive/zip"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite fn.zip from sdk/fn")

// source reads sdk/fn as the zip carries it: every file but the tests.
func source(t *testing.T) map[string][]byte {
	t.Helper()
	dir := filepath.Join("..", "..", "sdk", "fn")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestZipIsCurrent: the SDK in the binary is the SDK in the repository.
func TestZipIsCurrent(t *testing.T) {
	want := source(t)
	if *update {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		names := make([]string, 0, len(want))
		for n := range want {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(want[n])
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("fn.zip", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		zipped = buf.Bytes()
	}
	got, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range want {
		if !bytes.Equal(got[n], b) {
			t.Errorf("fn.zip's %s differs from sdk/fn: run go test ./internal/sdkcopy -update", n)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("fn.zip holds %s, which sdk/fn does not: run go test ./internal/sdkcopy -update", n)
		}
	}
	if GoVersion() == "" {
		t.Error("no go line in the SDK's go.mod")
	}
}
