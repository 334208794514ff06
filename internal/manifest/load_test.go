package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const loadYAML = `name: hello
module: hello.wasm
input:
  schema: schemas/in.json
sbom: app.cdx.json
`

// writeTree creates files under dir. A value "@dir" makes a directory and
// "@link:TARGET" a symbolic link; anything else is the file's content.
func writeTree(tb testing.TB, dir string, tree map[string]string) {
	tb.Helper()
	for name, content := range tree {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		var err error
		switch {
		case content == "@dir":
			err = os.MkdirAll(path, 0o755)
		case strings.HasPrefix(content, "@link:"):
			err = os.Symlink(strings.TrimPrefix(content, "@link:"), path)
		default:
			err = os.WriteFile(path, []byte(content), 0o644)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func TestLoad(t *testing.T) {
	complete := map[string]string{
		"fn/moat.yaml":        loadYAML,
		"fn/hello.wasm":       "\x00asm",
		"fn/schemas/in.json":  "{}",
		"fn/app.cdx.json":     "{}",
		"outside/secret.wasm": "\x00asm",
	}
	with := func(changes map[string]string) map[string]string {
		tree := make(map[string]string)
		for k, v := range complete {
			tree[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(tree, k)
			} else {
				tree[k] = v
			}
		}
		return tree
	}
	tests := []struct {
		name    string
		tree    map[string]string
		path    string // relative to the temporary directory
		wantDir string
		wantErr string
		field   string // the *Error's Field, if wantErr is set
		line    int
	}{
		{name: "folder", tree: complete, path: "fn", wantDir: "fn"},
		{name: "folder with slash", tree: complete, path: "fn/", wantDir: "fn"},
		{name: "file", tree: complete, path: "fn/moat.yaml", wantDir: "fn"},
		{name: "file with another name",
			tree: with(map[string]string{"fn/moat.yaml": "", "fn/other.yaml": loadYAML}),
			path: "fn/other.yaml", wantDir: "fn"},
		{name: "link inside folder",
			tree: with(map[string]string{"fn/hello.wasm": "@link:build/hello.wasm", "fn/build/hello.wasm": "\x00asm"}),
			path: "fn", wantDir: "fn"},
		{name: "module missing",
			tree:    with(map[string]string{"fn/hello.wasm": ""}),
			path:    "fn",
			wantErr: "moat.yaml:2: module: open hello.wasm: no such file or directory",
			field:   "module", line: 2},
		{name: "module is a directory",
			tree:    with(map[string]string{"fn/hello.wasm": "@dir"}),
			path:    "fn/moat.yaml",
			wantErr: "moat.yaml:2: module: open hello.wasm: is a directory, not a regular file",
			field:   "module", line: 2},
		{name: "module links outside",
			tree:    with(map[string]string{"fn/hello.wasm": "@link:../outside/secret.wasm"}),
			path:    "fn",
			wantErr: "moat.yaml:2: module: open hello.wasm: path escapes from parent",
			field:   "module", line: 2},
		{name: "module links to a missing file",
			tree:    with(map[string]string{"fn/hello.wasm": "@link:gone.wasm"}),
			path:    "fn",
			wantErr: "moat.yaml:2: module: open hello.wasm: no such file or directory",
			field:   "module", line: 2},
		{name: "schema missing",
			tree:    with(map[string]string{"fn/schemas/in.json": ""}),
			path:    "fn",
			wantErr: "moat.yaml:4: input.schema: open schemas/in.json: no such file or directory",
			field:   "input.schema", line: 4},
		{name: "sbom missing, named file",
			tree:    with(map[string]string{"fn/moat.yaml": "", "fn/fn.yaml": loadYAML, "fn/app.cdx.json": ""}),
			path:    "fn/fn.yaml",
			wantErr: "fn.yaml:5: sbom: open app.cdx.json: no such file or directory",
			field:   "sbom", line: 5},
		{name: "invalid manifest",
			tree:    with(map[string]string{"fn/moat.yaml": "name: hello\nmodule: hello.wasm\nlimts: {}\n"}),
			path:    "fn",
			wantErr: `moat.yaml:3: unknown field "limts"`,
			line:    3},
		{name: "manifest too large",
			tree:    with(map[string]string{"fn/moat.yaml": loadYAML + "#" + strings.Repeat("x", 64<<10) + "\n"}),
			path:    "fn",
			wantErr: "moat.yaml: manifest is 65537 bytes, more than the limit of 65536"},
		{name: "no manifest in folder",
			tree:    with(map[string]string{"fn/moat.yaml": ""}),
			path:    "fn",
			wantErr: "moat.yaml: no such file or directory"},
		{name: "manifest is a directory",
			tree:    with(map[string]string{"fn/moat.yaml": "@dir"}),
			path:    "fn",
			wantErr: "moat.yaml: is a directory, not a regular file"},
		{name: "no such path", tree: complete, path: "nope", wantErr: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			writeTree(t, tmp, tt.tree)
			m, dir, err := Load(filepath.Join(tmp, filepath.FromSlash(tt.path)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load(%s): %v", tt.path, err)
				}
				if want := filepath.Join(tmp, tt.wantDir); dir != want {
					t.Errorf("Load(%s) folder = %q, want %q", tt.path, dir, want)
				}
				if m.Name != "hello" || m.Module != "hello.wasm" {
					t.Errorf("Load(%s) = %+v, want hello", tt.path, m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load(%s) error = %v, want %q", tt.path, err, tt.wantErr)
			}
			if m != nil || dir != "" {
				t.Errorf("Load(%s) = %v, %q with an error, want nil, \"\"", tt.path, m, dir)
			}
			var e *Error
			if tt.field != "" || tt.line != 0 {
				if !errors.As(err, &e) {
					t.Fatalf("Load(%s) error is %T, want *Error", tt.path, err)
				}
				if e.Field != tt.field || e.Line != tt.line || e.File != filepath.Base(e.File) {
					t.Errorf("Load(%s) error = %#v, want Field %q, Line %d, a base name", tt.path, e, tt.field, tt.line)
				}
			}
			if strings.Contains(tt.wantErr, "no such file") && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = false, want true", err)
			}
		})
	}
}
