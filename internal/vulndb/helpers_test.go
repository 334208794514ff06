package vulndb

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// osvDir is the folder of real OSV records; see testdata/osv/README.md.
const osvDir = "testdata/osv"

func readTestdata(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(osvDir, path))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// testdataDB imports every record in testdata/osv.
func testdataDB(tb testing.TB) *DB {
	tb.Helper()
	db, err := Import(osvDir)
	if err != nil {
		tb.Fatalf("Import(%s): %v", osvDir, err)
	}
	return db
}

// recordFiles lists the record files of one ecosystem's folder, or of all
// with eco "".
func recordFiles(tb testing.TB, eco string) []string {
	tb.Helper()
	pattern := filepath.Join(osvDir, "*", "*.json")
	if eco != "" {
		pattern = filepath.Join(osvDir, eco, "*.json")
	}
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		tb.Fatalf("no records match %s: %v", pattern, err)
	}
	return files
}

// editRecord returns a real record with some top-level fields replaced
// (nil deletes one).
func editRecord(tb testing.TB, path string, set map[string]any) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(readTestdata(tb, path), &m); err != nil {
		tb.Fatal(err)
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustParse(tb testing.TB, b []byte) *Advisory {
	tb.Helper()
	a, err := ParseOSV(b)
	if err != nil {
		tb.Fatalf("ParseOSV: %v", err)
	}
	return a
}

// zipEntry is one file of a zip built by a test.
type zipEntry struct {
	name string
	data []byte
}

// writeZip writes a deflated zip of entries into dir and returns its path.
func writeZip(tb testing.TB, dir, name string, entries ...zipEntry) string {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ids returns the ids of findings, with the Fixed version of each.
func ids(fs []Finding) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		m[f.ID] = f.Fixed
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
