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
	"github.com/moatfn/moat/internal/sdkcopy"
)

func newNewCmd(e *env) *cobra.Command {
	var command bool
	var lang string
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Write a new Go function in folder NAME: a reactor on the SDK (the fast path), or with --command a net/http/cgi command",
		Long: `Write a new Go function in folder NAME: main.go, moat.yaml and go.mod.

By default the function is a reactor on the Go SDK: Moat initialises it once
at deploy and serves each request from a fresh copy of that snapshot, many
times cheaper than a command. The SDK is laid beside it in NAME/moat-sdk,
from the copy this moat binary carries, and go.mod points at it with a
replace directive: the function builds with nothing but Go, offline, anywhere.

With --command it is a plain net/http/cgi command: only the standard library.

With --lang js it is a JavaScript function in the Workers model
(export default { fetch(request, env) }): index.js, package.json, moat.yaml.
moat build bundles it (and what npm install put in node_modules) with the
bundler built into moat: no Node.js needed to build.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := filepath.Base(args[0])
			if !manifest.ValidName(name) {
				return fmt.Errorf("name %q: want lower case letters, digits and '-', starting with a letter", name)
			}
			if lang != "go" && lang != "js" {
				return fmt.Errorf("--lang %q: want go or js", lang)
			}
			if lang == "js" && command {
				return fmt.Errorf("--command is for Go functions")
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
			if lang == "js" {
				files := map[string]string{
					"index.js":     newJSIndex,
					"package.json": fmt.Sprintf(newJSPackage, name),
					"moat.yaml":    fmt.Sprintf(newJSManifest, name),
				}
				for f, body := range files {
					if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
						return err
					}
				}
				return e.print(map[string]string{"created": dir, "kind": "javascript"}, func(w io.Writer) {
					fmt.Fprintf(w, "created %s (JavaScript): index.js, package.json, moat.yaml\nnext: moat deploy --build %s\n", dir, dir)
				})
			}
			files := map[string]string{
				"go.mod":    "module " + name + "\n\ngo 1.24\n",
				"main.go":   newCommandMain,
				"moat.yaml": fmt.Sprintf(newManifest, name, name),
			}
			made := "main.go, moat.yaml, go.mod"
			if !command {
				files["main.go"] = newReactorMain
				files["go.mod"] = fmt.Sprintf("module %s\n\ngo %s\n\nrequire %s v0.0.0\n\n// The SDK this moat binary carries, laid beside the function by moat new.\nreplace %s => ./%s\n",
					name, sdkcopy.GoVersion(), sdkcopy.Module, sdkcopy.Module, sdkDir)
				if err := sdkcopy.WriteTo(filepath.Join(dir, sdkDir)); err != nil {
					return fmt.Errorf("the SDK: %w", err)
				}
				made += ", " + sdkDir + "/ (the SDK)"
			}
			for f, body := range files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
					return err
				}
			}
			kind := map[bool]string{false: "reactor", true: "command"}[command]
			return e.print(map[string]string{"created": dir, "kind": kind}, func(w io.Writer) {
				fmt.Fprintf(w, "created %s (a %s): %s\nnext: moat build %s && moat deploy %s\n", dir, kind, made, dir, dir)
			})
		},
	}
	cmd.Flags().BoolVar(&command, "command", false, "write a plain net/http/cgi command (standard library only) instead of an SDK reactor")
	cmd.Flags().StringVar(&lang, "lang", "go", "the function's language: go or js")
	return cmd
}

// sdkDir is where moat new lays the SDK in a new function's folder.
const sdkDir = "moat-sdk"

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

const newReactorMain = `// Command is a Moat function: an http.Handler registered with the Moat SDK.
// Built as a reactor, Moat runs init once at deploy and serves each request
// from a fresh copy of the memory it left: do the work that does not depend
// on the request here (parse templates, build tables), never per-request
// randomness or secrets (docs/functions.md).
package main

import (
	"encoding/json"
	"net/http"

	"github.com/moatfn/moat/sdk/fn"
)

func init() { fn.HandleFunc(handle) } // register in init: a reactor never runs main

func main() { fn.Main() } // serves the one request when built as a command

func handle(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"greeting": "hello, " + name})
}
`

const newJSIndex = `// A Moat function in JavaScript, in the Workers model. Moat evaluates
// this module once, at deploy; each request then runs fetch in a fresh
// copy of that state: nothing of one request is seen by the next.
// Capabilities come through env, each granted in moat.yaml
// (docs/javascript.md): env.KV.NAME, env.secrets.get(NAME).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") || "world";
    return Response.json({ greeting: "hello, " + name });
  },
};
`

const newJSPackage = `{
  "name": %q,
  "private": true,
  "version": "0.0.0",
  "type": "module",
  "main": "index.js"
}
`

const newJSManifest = `name: %s
module: dist/index.js
limits: {memory: 64MiB, timeout: 5s, concurrency: 20}
http: {auth: public, methods: [GET, POST]}
# After npm install, name the lock file, so that what is bundled is
# inventoried and checked for advisories at deploy:
# lockfiles: [package-lock.json]
`

const newCommandMain = `// Command is a Moat function: a plain http.Handler, served over CGI.
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
	if bundle.JSEntry(path) != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "bundling %s for Moat's JavaScript runtime\n", path)
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "building %s for wasm (GOOS=wasip1 GOARCH=wasm)\n", path)
	}
	out, err := bundle.BuildProgress(cmd.Context(), path, cmd.ErrOrStderr())
	if err == nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "built in %s\n", time.Since(start).Round(100*time.Millisecond))
	}
	return out, err
}
