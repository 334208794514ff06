package testwasm

import (
	"bytes"
	"os"
	"testing"
)

// TestMinimalExample keeps examples/minimal/minimal.wasm the module that
// MinimalCGI assembles. Run with MOAT_UPDATE=1 to rewrite it.
func TestMinimalExample(t *testing.T) {
	const path = "../../examples/minimal/minimal.wasm"
	if os.Getenv("MOAT_UPDATE") != "" {
		if err := os.WriteFile(path, MinimalCGI(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, MinimalCGI()) {
		t.Fatalf("%s differs from MinimalCGI(); rewrite it with MOAT_UPDATE=1 go test ./internal/testwasm", path)
	}
}
