package registry

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadHints: whatever the hints file holds, reading it neither fails
// the start nor yields more than maxHints hints.
func FuzzReadHints(f *testing.F) {
	f.Add([]byte(`[{"fn":"hello","version":"5fb54e85ff23d689","sum":"adeb21d11f53c0ac531588a4b9822e569b0b496256f002e08d26223bd358d22b","memory":67108864}]`))
	f.Add([]byte(`[{"fn":"x","sum":"../../etc/passwd","memory":-1}]`))
	f.Add([]byte("\x00\xff{["))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, hintsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if hints := readHints(dir); len(hints) > maxHints {
			t.Fatalf("%d hints", len(hints))
		}
	})
}
