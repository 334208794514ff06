package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/manifest"
)

func newNewCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "new NAME",
		Short: "Write a new Go function (an http.Handler served by net/http/cgi) in folder NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := filepath.Base(args[0])
			if !manifest.ValidName(name) {
				return fmt.Errorf("name %q: want lower case letters, digits and '-', starting with a letter", name)
			}
			dir := args[0]
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s already exists", dir)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			files := map[string]string{
				"go.mod":    "module " + name + "\n\ngo 1.24\n",
				"main.go":   newMain,
				"moat.yaml": fmt.Sprintf(newManifest, name, name),
			}
			for f, body := range files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
					return err
				}
			}
			return e.print(map[string]string{"created": dir}, func(w io.Writer) {
				fmt.Fprintf(w, "created %s: main.go, moat.yaml, go.mod\nnext: moat build %s && moat deploy %s\n", dir, dir, dir)
			})
		},
	}
}

func newBuildCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build the Go function in DIR (default .) to the module its moat.yaml names",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			out, err := buildWithProgress(cmd, dir)
			if err != nil {
				return err
			}
			return e.print(map[string]string{"module": out}, func(w io.Writer) { fmt.Fprintf(w, "built %s\n", out) })
		},
	}
}

const newMain = `// Command is a Moat function: a plain http.Handler, served over CGI.
package main

import (
	"encoding/json"
	"net/http"
	"net/http/cgi"
)

func main() {
	cgi.Serve(http.HandlerFunc(handle))
}

func handle(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"greeting": "hello, " + name})
}
`

const newManifest = `name: %s
module: %s.wasm
limits: {memory: 64MiB, timeout: 5s, concurrency: 20}
http: {auth: public, methods: [GET, POST]}
`

// buildWithProgress builds the Go function at path, telling stderr how it
// goes as it goes.
func buildWithProgress(cmd *cobra.Command, path string) (string, error) {
	start := time.Now()
	fmt.Fprintf(cmd.ErrOrStderr(), "building %s for wasm (GOOS=wasip1 GOARCH=wasm)\n", path)
	out, err := bundle.BuildProgress(cmd.Context(), path, cmd.ErrOrStderr())
	if err == nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "built in %s\n", time.Since(start).Round(100*time.Millisecond))
	}
	return out, err
}
