// Package testwasm builds the WebAssembly guests that tests run: Go sources
// under testdata/, compiled with the real toolchain for GOOS=wasip1.
package testwasm

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/moatfn/moat/internal/bundle"
)

var mu sync.Mutex // serialises builds within one test binary

// Path returns the path of the wasm file built from testdata/NAME, building
// it when the sources changed. Built modules are cached under the user's
// cache directory, keyed by the sources and the Go version, so the test
// binaries of several packages share one build.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "testdata", name)
	return BuildDir(tb, src)
}

// Bytes returns the module built from testdata/NAME.
func Bytes(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BuildDir builds the Go package in dir for GOOS=wasip1 GOARCH=wasm and
// returns the module's path.
func BuildDir(tb testing.TB, dir string) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	key, err := sourceKey(dir)
	if err != nil {
		tb.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "moat-testwasm", key+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := out + ".tmp" + hex.EncodeToString([]byte{byte(os.Getpid()), byte(os.Getpid() >> 8)})
	args := []string{"build", "-o", tmp}
	// A function that registers its handler with the SDK is a reactor,
	// built as moat build builds it.
	if bundle.Reactor(dir) {
		args = append(args, "-buildmode=c-shared")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	// A guest with a go.mod of its own (one that uses the SDK through a
	// replace) is built outside any workspace.
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", dir, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// sourceKey hashes every file in dir with the Go version.
func sourceKey(dir string) (string, error) {
	h := sha256.New()
	h.Write([]byte(runtime.Version()))
	if bundle.Reactor(dir) {
		h.Write([]byte("-buildmode=c-shared"))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		h.Write([]byte(e.Name()))
		h.Write(b)
	}
	// A guest built with the SDK changes when the SDK does.
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		_, file, _, _ := runtime.Caller(0)
		sdk := filepath.Join(filepath.Dir(file), "..", "..", "sdk", "fn")
		files, _ := filepath.Glob(filepath.Join(sdk, "*.go"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			h.Write([]byte(f))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// ShareCompileCache makes the compilation cache of the node data
// directory data one shared by every test node of this machine that asks
// for it, so that a large module (the JavaScript runtime: about 11 s) is
// compiled once rather than once per node. Only for tests that do not
// spoil a cache.
func ShareCompileCache(tb testing.TB, data string) {
	tb.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		return
	}
	shared := filepath.Join(cache, "moat-testwasm", "node-wazero")
	if os.MkdirAll(shared, 0o700) != nil || os.MkdirAll(filepath.Join(data, "cache"), 0o700) != nil {
		return
	}
	if err := os.Symlink(shared, filepath.Join(data, "cache", "wazero")); err != nil {
		tb.Fatal(err)
	}
}
