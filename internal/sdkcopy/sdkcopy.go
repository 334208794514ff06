// Package sdkcopy carries the Go guest SDK (sdk/fn) inside the moat binary,
// so that `moat new` can lay it beside a new function and the function
// builds anywhere with nothing but Go: no module download, no network, no
// checkout of this repository. fn.zip is sdk/fn without its tests;
// TestZipIsCurrent keeps it so (go test ./internal/sdkcopy -update).
package sdkcopy

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

//go:embed fn.zip
var zipped []byte

// Module is the SDK's module path.
const Module = "github.com/moatfn/moat/sdk/fn"

// Files returns the SDK's files by name.
func Files() (map[string][]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		if f.Name != path.Base(f.Name) || strings.HasPrefix(f.Name, ".") {
			return nil, fmt.Errorf("sdk copy: unexpected entry %q", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, 4<<20))
		rc.Close()
		if err != nil {
			return nil, err
		}
		out[f.Name] = b
	}
	return out, nil
}

// GoVersion is the go line of the SDK's go.mod: a module that requires the
// SDK needs at least that.
func GoVersion() string {
	fs, err := Files()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(fs["go.mod"]), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WriteTo writes the SDK into dir, which must not exist yet.
func WriteTo(dir string) error {
	fs, err := Files()
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for name, b := range fs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
