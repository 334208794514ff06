package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads the manifest at path, which is a folder holding moat.yaml or
// the manifest file itself, and returns it with the folder it lives in.
// Beyond Parse, it checks that the files the manifest names (module,
// input.schema, sbom) are regular files inside that folder; a symbolic
// link that leads outside it is refused.
//
// Errors about the manifest's content are of type *Error with File set to
// the manifest's base name, as in
//
//	moat.yaml:2: module: open hello.wasm: no such file or directory
//
// and they wrap the underlying cause, so errors.Is(err, fs.ErrNotExist)
// holds for a missing module. An error finding or reading the manifest
// itself (no moat.yaml in the folder, say) is returned as it is, usually an
// *fs.PathError.
func Load(path string) (*Manifest, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	dir, file := filepath.Clean(path), filepath.Join(path, FileName)
	if !fi.IsDir() {
		dir, file = filepath.Dir(path), path
	}
	src, err := readManifest(file)
	if err != nil {
		return nil, "", err
	}
	name := filepath.Base(file)
	m, lines, err := parse(src)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = name
		}
		return nil, "", err
	}

	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	for _, f := range []struct{ field, path string }{
		{"module", m.Module},
		{"input.schema", m.Input.Schema},
		{"sbom", m.SBOM},
	} {
		if f.path == "" {
			continue
		}
		if err := regularFile(root, f.path); err != nil {
			return nil, "", &Error{File: name, Line: lines[f.field], Field: f.field, Err: err}
		}
	}
	return m, dir, nil
}

// readManifest reads the regular file at path, up to one byte more than
// Parse accepts so Parse can report the size.
func readManifest(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular(fi)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return src, nil
}

// regularFile checks that rel names a regular file inside root, following
// symbolic links only while they stay inside it.
func regularFile(root *os.Root, rel string) error {
	fi, err := root.Stat(rel)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	if !fi.Mode().IsRegular() {
		return &fs.PathError{Op: "open", Path: rel, Err: errNotRegular(fi)}
	}
	return nil
}

func errNotRegular(fi fs.FileInfo) error {
	if fi.IsDir() {
		return errors.New("is a directory, not a regular file")
	}
	return fmt.Errorf("not a regular file (mode %s)", fi.Mode().Type())
}
