package testwasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestSDK runs the tests of the guest SDK, a module of its own that
// `go test ./...` here does not reach, and vets it for the guest target.
func TestSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	_, file, _, _ := runtime.Caller(0)
	sdk := filepath.Join(filepath.Dir(file), "..", "..", "sdk", "fn")
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"test", []string{"test", "-count=1", "./..."}, nil},
		{"vet", []string{"vet", "./..."}, nil},
		{"vet wasip1", []string{"vet", "./..."}, []string{"GOOS=wasip1", "GOARCH=wasm"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("go", c.args...)
			cmd.Dir = sdk
			cmd.Env = append(append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0"), c.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %v in sdk/fn: %v\n%s", c.args, err, out)
			}
		})
	}
}
