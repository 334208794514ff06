package vulndb

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportCounts(t *testing.T) {
	db := testdataDB(t)
	want := map[string]int{"Go": 43, "npm": 10, "PyPI": 10} // testdata/osv/README.md
	if got := db.Counts(); !maps.Equal(got, want) {
		t.Fatalf("Import(%s).Counts() = %v, want %v", osvDir, got, want)
	}
	if db.Len() != 63 {
		t.Fatalf("Import(%s).Len() = %d, want 63", osvDir, db.Len())
	}
}

func TestImportZipEqualsFolder(t *testing.T) {
	for eco, n := range map[string]int{"Go": 43, "npm": 10, "PyPI": 10} {
		t.Run(eco, func(t *testing.T) {
			dir := filepath.Join(osvDir, eco)
			fromDir, err := Import(dir)
			if err != nil {
				t.Fatalf("Import(%s): %v", dir, err)
			}
			zipPath := filepath.Join(dir, "all.zip")
			fromZip, err := Import(zipPath)
			if err != nil {
				t.Fatalf("Import(%s): %v", zipPath, err)
			}
			a, _ := fromDir.Encode()
			b, _ := fromZip.Encode()
			if !bytes.Equal(a, b) {
				t.Errorf("Import(%s) and Import(%s) differ", dir, zipPath)
			}
			if got := fromZip.Counts(); !maps.Equal(got, map[string]int{eco: n}) {
				t.Errorf("Import(%s).Counts() = %v, want %s: %d", zipPath, got, eco, n)
			}
		})
	}
}

func TestImportSingleFile(t *testing.T) {
	db, err := Import(filepath.Join(osvDir, "PyPI", "GHSA-462w-v97r-4m45.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(db.Match("PyPI", "jinja2", "2.10")); !maps.Equal(got, map[string]string{"GHSA-462w-v97r-4m45": "2.10.1"}) {
		t.Fatalf("Match = %v", got)
	}
}

// copyRecords copies the records of an ecosystem's folder into dir.
func copyRecords(t *testing.T, eco, dir string) {
	t.Helper()
	for _, f := range recordFiles(t, eco) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportFolderRecursesAndSkips(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	copyRecords(t, "npm", sub)
	for name, data := range map[string]string{"README.md": "# not a record", "notes.txt": "{", "data.JSON.bak": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A symbolic link is not followed, even to a record.
	if err := os.Symlink(filepath.Join(sub, "GHSA-35jh-r3h4-6jhm.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	db, err := Import(dir)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got := db.Counts(); !maps.Equal(got, map[string]int{"npm": 10}) {
		t.Fatalf("Counts = %v, want npm: 10", got)
	}
}

func TestImportRefuses(t *testing.T) {
	dir := t.TempDir()
	record := readTestdata(t, "Go/GO-2020-0015.json")
	goZip, err := os.ReadFile(filepath.Join(osvDir, "Go", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	badFolder := filepath.Join(dir, "bad-folder")
	if err := os.Mkdir(badFolder, 0o700); err != nil {
		t.Fatal(err)
	}
	copyRecords(t, "Go", badFolder)
	if err := os.WriteFile(filepath.Join(badFolder, "GO-9999-0001.json"), []byte(`{"id":"GO-9999-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":["0"]}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		path    string
		wantIs  error
		wantErr string
	}{
		{"dot-dot", writeZip(t, dir, "dotdot.zip", zipEntry{"ok.json", record}, zipEntry{"../x.json", record}), ErrUnsafePath, `entry "../x.json": ".." in path`},
		{"dot-dot inside", writeZip(t, dir, "dotdot2.zip", zipEntry{"a/../../x.json", record}), ErrUnsafePath, `".." in path`},
		{"backslash dot-dot", writeZip(t, dir, "backslash.zip", zipEntry{`a\..\..\x.json`, record}), ErrUnsafePath, `".." in path`},
		{"dot-dot not .json", writeZip(t, dir, "dotdot3.zip", zipEntry{"../README", []byte("x")}), ErrUnsafePath, `".." in path`},
		{"absolute", writeZip(t, dir, "abs.zip", zipEntry{"/etc/x.json", record}), ErrUnsafePath, "absolute path"},
		{"drive letter", writeZip(t, dir, "drive.zip", zipEntry{`C:\x.json`, record}), ErrUnsafePath, "absolute path"},
		{"zip bomb", writeZip(t, dir, "bomb.zip", zipEntry{"big.json", bytes.Repeat([]byte(" "), MaxRecordSize+1)}), ErrTooLarge, "bomb.zip: big.json: over the cap of 4194304 bytes per record"},
		// archive/zip stops at the declared size, before this package's cap.
		{"zip bomb, lying header", lyingZip(t, dir), zip.ErrFormat, "liar.zip: big.json: "},
		{"truncated zip", write("truncated.zip", goZip[:len(goZip)/2]), zip.ErrFormat, "not a readable zip"},
		{"empty zip file", write("empty.zip", nil), nil, "not a readable zip"},
		{"not a zip", write("text.zip", []byte("hello, world")), nil, "not a readable zip"},
		{"bad record in zip", writeZip(t, dir, "badrec.zip", zipEntry{"GO-2020-0015.json", record}, zipEntry{"sub/bad.json", []byte(`{"id":"X"}`)}), ErrInvalidRecord, "badrec.zip: sub/bad.json: X: modified: missing"},
		{"bad record in folder", badFolder, ErrInvalidRecord, "GO-9999-0001.json: GO-9999-0001: affected[0].ranges[0].events[0]: not an object"},
		{"bad single file", write("bad.json", []byte("[]")), ErrInvalidRecord, "bad.json: not a JSON object"},
		{"huge single file", write("huge.json", bytes.Repeat([]byte(" "), MaxRecordSize+10)), ErrTooLarge, "huge.json: over the cap"},
		{"other extension", write("records.tar", []byte("x")), nil, "not a .zip, a .json or a folder"},
		{"missing", filepath.Join(dir, "nope.zip"), os.ErrNotExist, "nope.zip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Import(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Fatalf("Import(%s) = %v, %v, want error %q (%v)", tt.name, db, err, tt.wantErr, tt.wantIs)
			}
			if db != nil {
				t.Fatalf("Import(%s) returned a DB with its error", tt.name)
			}
		})
	}
}

// lyingZip writes a zip whose one entry says it holds 100 bytes and
// inflates to 8 MiB.
func lyingZip(t *testing.T, dir string) string {
	t.Helper()
	data := bytes.Repeat([]byte(" "), 8<<20)
	var deflated bytes.Buffer
	fw, err := flate.NewWriter(&deflated, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: "big.json", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE(data[:100]), CompressedSize64: uint64(deflated.Len()), UncompressedSize64: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(deflated.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "liar.zip")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestImportCaps runs the caps that are too large to reach in a test at a
// smaller size.
func TestImportCaps(t *testing.T) {
	dir := t.TempDir()
	record := readTestdata(t, "Go/GO-2020-0015.json")
	var entries []zipEntry
	for i := range 5 {
		entries = append(entries, zipEntry{name: string(rune('a'+i)) + ".json", data: record})
	}
	five := writeZip(t, dir, "five.zip", entries...)
	mixed := writeZip(t, dir, "mixed.zip", zipEntry{"a.json", record}, zipEntry{"b.txt", []byte("x")}, zipEntry{"c.txt", []byte("x")}, zipEntry{"d/", nil})

	tests := []struct {
		name    string
		im      importer
		path    string
		wantErr string // "" means it imports
	}{
		{"entries", importer{maxEntries: 4, maxEntry: MaxRecordSize, maxTotal: MaxTotalSize}, five, "5 entries, over the cap of 4"},
		{"entries exactly", importer{maxEntries: 5, maxEntry: MaxRecordSize, maxTotal: MaxTotalSize}, five, ""},
		// Every entry counts against the cap, read or skipped.
		{"entries skipped", importer{maxEntries: 3, maxEntry: MaxRecordSize, maxTotal: MaxTotalSize}, mixed, "4 entries, over the cap of 3"},
		{"folder files", importer{maxEntries: 42, maxEntry: MaxRecordSize, maxTotal: MaxTotalSize}, filepath.Join(osvDir, "Go"), "more than 42 records"},
		{"entry size", importer{maxEntries: 10, maxEntry: int64(len(record)) - 1, maxTotal: MaxTotalSize}, five, "over the cap of"},
		{"entry size exactly", importer{maxEntries: 10, maxEntry: int64(len(record)), maxTotal: MaxTotalSize}, five, ""},
		{"total", importer{maxEntries: 10, maxEntry: MaxRecordSize, maxTotal: int64(len(record))*4 + 1}, five, "e.json: over the cap of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := tt.im
			im.ctx = context.Background()
			err := im.path(tt.path)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("import(%s): %v", tt.name, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrTooLarge)):
				t.Fatalf("import(%s) error = %v, want ErrTooLarge with %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestImportHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, path := range []string{filepath.Join(osvDir, "Go"), filepath.Join(osvDir, "Go", "all.zip")} {
		if _, err := importPath(ctx, path); !errors.Is(err, context.Canceled) {
			t.Errorf("importPath(cancelled, %s) = %v, want context.Canceled", path, err)
		}
	}
}
