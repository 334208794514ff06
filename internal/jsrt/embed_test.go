package jsrt

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rebuild runtime.wasm.gz from runtime/")

// TestEmbeddedRuntimeIsCurrent: the runtime in the binary is the one the
// sources in runtime/ build. With -update it rebuilds it.
func TestEmbeddedRuntimeIsCurrent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "runtime.wasm")
	cmd := exec.Command("go", append(append([]string{}, BuildArgs...), "-o", out, ".")...)
	cmd.Dir = "runtime"
	cmd.Env = append(os.Environ(), BuildEnv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(built)
	if *update {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(built)
		zw.Close()
		if err := os.WriteFile("runtime.wasm.gz", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("runtime.wasm.gz: %d bytes (%d uncompressed), sha256 %x", buf.Len(), len(built), sum)
		return
	}
	if got := Sum(); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("runtime.wasm.gz (%s) is not what runtime/ builds (%x): go test ./internal/jsrt -run TestEmbeddedRuntimeIsCurrent -update", got, sum)
	}
}
