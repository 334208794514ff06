package jsrt

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
)

// runtime.wasm.gz is the runtime built from runtime/ by
// `go test ./internal/jsrt -run TestEmbeddedRuntimeIsCurrent -update`
// (BuildArgs), which TestEmbeddedRuntimeIsCurrent holds it to.
//
//go:embed runtime.wasm.gz
var compressed []byte

// Module returns the runtime's WebAssembly module, decompressed once.
var Module = sync.OnceValues(func() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("the JavaScript runtime in this binary: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("the JavaScript runtime in this binary: %w", err)
	}
	return b, nil
})

// Sum is the SHA-256 (hex) of the runtime module.
func Sum() string {
	b, err := Module()
	if err != nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// BuildArgs are the go build arguments of the embedded runtime: a
// reactor, with no paths of the machine that built it, so that the same
// sources and Go build the same bytes anywhere.
var BuildArgs = []string{"build", "-trimpath", "-buildvcs=false", "-buildmode=c-shared"}

// BuildEnv is the environment of that build, added to the machine's.
var BuildEnv = []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod"}
