package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Caps on what Import reads, beside MaxRecordSize per record.
const (
	MaxEntries   = 500_000 // entries of a zip, or .json files of a folder
	MaxTotalSize = 2 << 30 // bytes of records, uncompressed, in one import
)

// ErrUnsafePath reports a zip entry whose name is an absolute path or
// climbs out of the archive with "..".
var ErrUnsafePath = errors.New("unsafe path in archive")

// Import reads OSV records into a new DB from path, which is one of: a zip
// of records such as osv.dev's per-ecosystem all.zip, a folder searched
// recursively for regular *.json files (nothing else in it is read), or a
// single .json record.
//
// An import is all or nothing: a record ParseOSV refuses fails it with an
// error naming the file (and the zip entry) and the problem. So does a zip
// entry named with an absolute or ".." path (ErrUnsafePath), more than
// MaxEntries entries, a record over MaxRecordSize when read (the sizes a
// zip declares are not trusted), or more than MaxTotalSize bytes in all
// (ErrTooLarge). Entries and files not named *.json are skipped.
func Import(path string) (*DB, error) {
	return importPath(context.Background(), path)
}

// importPath is Import, stopping when ctx ends.
func importPath(ctx context.Context, path string) (*DB, error) {
	im := &importer{ctx: ctx, maxEntries: MaxEntries, maxEntry: MaxRecordSize, maxTotal: MaxTotalSize}
	if err := im.path(path); err != nil {
		return nil, err
	}
	return fromParsed(im.advisories), nil
}

// fromParsed builds a DB from advisories nobody else holds, without the
// copy New makes.
func fromParsed(advisories []*Advisory) *DB {
	m := make(map[string]*Advisory, len(advisories))
	for _, a := range advisories {
		if old, ok := m[a.ID]; ok && a.Modified.Before(old.Modified) {
			continue
		}
		m[a.ID] = a
	}
	return build(m)
}

// importer reads records, keeping count of what it has read against its
// caps.
type importer struct {
	ctx        context.Context
	maxEntries int
	maxEntry   int64
	maxTotal   int64

	entries    int
	total      int64
	advisories []*Advisory
}

func (im *importer) path(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return im.dir(path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file or a folder", path)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".zip":
		return im.zip(path)
	case ".json":
		return im.file(path)
	}
	return fmt.Errorf("%s: not a .zip, a .json or a folder", path)
}

func (im *importer) dir(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := im.ctx.Err(); err != nil {
			return err
		}
		// Only regular files: a FIFO would block, and a symbolic link could
		// lead out of the folder.
		if !d.Type().IsRegular() || !strings.EqualFold(filepath.Ext(path), ".json") {
			return nil
		}
		return im.file(path)
	})
}

func (im *importer) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := im.record(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (im *importer) zip(path string) error {
	zr, err := zip.OpenReader(path)
	// ErrInsecurePath comes with a usable reader; the names are checked
	// below, with an error that says which.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("%s: not a readable zip: %w", path, err)
	}
	defer zr.Close()
	if len(zr.File) > im.maxEntries-im.entries {
		return fmt.Errorf("%s: %d entries, over the cap of %d: %w", path, len(zr.File), im.maxEntries, ErrTooLarge)
	}
	for _, f := range zr.File {
		if err := im.ctx.Err(); err != nil {
			return err
		}
		if problem := unsafeName(f.Name); problem != "" {
			return fmt.Errorf("%s: entry %q: %s: %w", path, f.Name, problem, ErrUnsafePath)
		}
		if f.FileInfo().IsDir() || !strings.EqualFold(filepath.Ext(f.Name), ".json") {
			continue
		}
		if err := im.zipEntry(f); err != nil {
			return fmt.Errorf("%s: %s: %w", path, f.Name, err)
		}
	}
	return nil
}

func (im *importer) zipEntry(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return im.record(rc)
}

// unsafeName says what is wrong with a zip entry's name; "" when nothing
// is. Both "/" and "\" count as separators.
func unsafeName(name string) string {
	n := strings.ReplaceAll(name, `\`, "/")
	switch {
	case n == "":
		return "empty name"
	case strings.IndexByte(n, 0) >= 0:
		return "NUL in name"
	case n[0] == '/' || (len(n) >= 2 && n[1] == ':'):
		return "absolute path"
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return `".." in path`
		}
	}
	return ""
}

// record reads and parses one record from r, counting it against the
// caps. It reads at most one byte over the per-record cap, whatever r's
// source claims its size is.
func (im *importer) record(r io.Reader) error {
	im.entries++
	if im.entries > im.maxEntries {
		return fmt.Errorf("more than %d records: %w", im.maxEntries, ErrTooLarge)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, im.maxEntry+1))
	im.total += n
	switch {
	case n > im.maxEntry:
		return fmt.Errorf("over the cap of %d bytes per record: %w", im.maxEntry, ErrTooLarge)
	case im.total > im.maxTotal:
		return fmt.Errorf("over the cap of %d bytes per import: %w", im.maxTotal, ErrTooLarge)
	case err != nil:
		return err
	}
	a, err := ParseOSV(buf.Bytes())
	if err != nil {
		return err
	}
	im.advisories = append(im.advisories, a)
	return nil
}
