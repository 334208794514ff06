// Package bundle reads a function's folder (moat.yaml and the files it
// names) for deploy, and builds Go functions to WebAssembly.
package bundle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/sign"
)

// MaxFile is the largest file a bundle may carry.
const MaxFile = 64 << 20

// Bundle is what a deploy sends.
type Bundle struct {
	Dir      string
	Manifest *manifest.Manifest
	Source   []byte            // moat.yaml as written
	Files    map[string][]byte // the files the manifest names, by path
	// Signature is moat.sig beside moat.yaml, if there is one.
	Signature []byte
}

// isModule reports whether path is a regular file holding a WebAssembly
// module (by its magic number), and its base name.
func isModule(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != "\x00asm" {
		return "", false
	}
	return filepath.Base(path), true
}

// Read loads the manifest at path (a folder holding moat.yaml, or the file)
// and every file it names.
func Read(path string) (*Bundle, error) {
	if mod, ok := isModule(path); ok {
		// A module given where a manifest goes: its folder's manifest, if
		// that is the manifest of this module.
		dir := filepath.Dir(path)
		m, _, err := manifest.Load(dir)
		if err != nil {
			return nil, fmt.Errorf("%s is a WebAssembly module, not a manifest, and its folder has no usable %s: %w", path, manifest.FileName, err)
		}
		if filepath.Clean(filepath.Join(dir, filepath.FromSlash(m.Module))) != filepath.Clean(path) {
			return nil, fmt.Errorf("%s is a WebAssembly module, not a manifest; the %s beside it names module %s, not %s", path, manifest.FileName, m.Module, mod)
		}
		path = dir
	}
	m, dir, err := manifest.Load(path)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if fi, serr := os.Stat(path); serr == nil && !fi.IsDir() {
		src, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	b := &Bundle{Dir: dir, Manifest: m, Source: src, Files: map[string][]byte{}}
	for _, p := range m.Files() {
		full := filepath.Join(dir, filepath.FromSlash(p))
		fi, err := os.Stat(full)
		if err != nil {
			return nil, err
		}
		if fi.Size() > MaxFile {
			return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", p, fi.Size(), MaxFile)
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return nil, err
		}
		b.Files[p] = data
	}
	sig, err := os.ReadFile(filepath.Join(dir, sign.FileName))
	switch {
	case err == nil:
		if len(sig) > sign.MaxSignature {
			return nil, fmt.Errorf("%s: over %d bytes", sign.FileName, sign.MaxSignature)
		}
		b.Signature = sig
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return b, nil
}

// BuildGo compiles the Go main package in dir to out as a WASI command
// (GOOS=wasip1 GOARCH=wasm), with the go tool on PATH.
func BuildGo(ctx context.Context, dir, out string) error { return BuildGoProgress(ctx, dir, out, nil) }

// BuildGoProgress is BuildGo telling progress, when it is not nil, what
// happens as it happens: each package as go build compiles it, and every
// ten seconds without one, how long the build has taken (the first build
// for wasm compiles the standard library: minutes).
func BuildGoProgress(ctx context.Context, dir, out string, progress io.Writer) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-o", abs}
	if Reactor(dir) {
		args = append(args, "-buildmode=c-shared")
	}
	if progress != nil {
		args = append(args, "-v")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if progress == nil {
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
		}
		return nil
	}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var errs []string // what is not a package name: the compiler's complaints
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			if isImportPath(line) {
				fmt.Fprintf(progress, "  compiled %s\n", line)
			} else {
				errs = append(errs, line)
				fmt.Fprintf(progress, "  %s\n", line)
			}
		case <-tick.C:
			fmt.Fprintf(progress, "  still building (%s)\n", time.Since(start).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, strings.Join(errs, "\n"))
	}
	return nil
}

// isImportPath reports whether a line of go build -v is a package it
// compiled rather than an error.
func isImportPath(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t:") {
		return false
	}
	return true
}

// Reactor reports whether the Go function in dir registers its handler
// with the SDK (fn.Handle or fn.HandleFunc): then it is built as a reactor
// (-buildmode=c-shared), which Moat initialises once and serves from a
// snapshot (docs/snapshots.md). Any other Go function is built as a WASI
// command, a fresh Go runtime per request.
func Reactor(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("fn.Handle(")) || bytes.Contains(b, []byte("fn.HandleFunc(")) {
			return true
		}
	}
	return false
}

// HasSources reports whether the function folder at path holds sources to
// build: Go, or the JavaScript of a function whose module is a bundle.
func HasSources(path string) bool {
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		path = filepath.Dir(path)
	}
	files, _ := filepath.Glob(filepath.Join(path, "*.go"))
	return len(files) > 0 || JSEntry(path) != ""
}

// Build builds the function in the folder at path when it has Go sources:
// the module named by moat.yaml is (re)written from them.
func Build(ctx context.Context, path string) (string, error) { return BuildProgress(ctx, path, nil) }

// BuildProgress is Build telling progress how it goes (BuildGoProgress).
func BuildProgress(ctx context.Context, path string, progress io.Writer) (string, error) {
	dir := path
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		dir = filepath.Dir(path)
	}
	src, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return "", err
	}
	m, err := manifest.Parse(src)
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifest.FileName, err)
	}
	out := filepath.Join(dir, filepath.FromSlash(m.Module))
	if m.JavaScript() {
		entry := JSEntry(dir)
		if entry == "" {
			return "", fmt.Errorf("%s has no JavaScript to bundle: index.js, or package.json's main", dir)
		}
		// What npm installed goes into the bundle: its lock file must be
		// named, so that the deploy inventories it and gates advisories.
		if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err == nil && !slices.Contains(m.LockFiles, "package-lock.json") {
			return "", fmt.Errorf("%s has a package-lock.json that %s does not name: add lockfiles: [package-lock.json], so that the packages bundled are inventoried and checked at deploy", dir, manifest.FileName)
		}
		return out, BuildJS(dir, entry, out, progress)
	}
	goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	if len(goFiles) == 0 {
		return "", fmt.Errorf("%s has no Go sources to build", dir)
	}
	return out, BuildGoProgress(ctx, dir, out, progress)
}
