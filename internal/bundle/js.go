package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/moatfn/moat/internal/manifest"
)

// jsEntries are where a JavaScript function's source starts when its
// package.json names no "main".
var jsEntries = []string{"index.js", "index.mjs", "index.ts", "src/index.js", "src/index.mjs", "src/index.ts"}

// JSEntry returns the entry point of the JavaScript function in dir (a
// path relative to it): package.json's "main" when it names one, else the
// first of index.js, index.mjs, index.ts and the same under src/. "" when
// there is none, or when the manifest's module is not a JavaScript bundle.
func JSEntry(dir string) string {
	src, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return ""
	}
	m, err := manifest.Parse(src)
	if err != nil || !m.JavaScript() {
		return ""
	}
	var pkg struct {
		Main string `json:"main"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil && json.Unmarshal(b, &pkg) == nil && pkg.Main != "" {
		if p := filepath.ToSlash(filepath.Clean(pkg.Main)); p != filepath.ToSlash(filepath.Clean(m.Module)) && !strings.HasPrefix(p, "../") {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				return p
			}
		}
	}
	for _, e := range jsEntries {
		if e == m.Module {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e)); err == nil {
			return e
		}
	}
	return ""
}

// BuildJS bundles the JavaScript function whose entry is entry (in dir)
// into out, one script for Moat's JavaScript runtime: its dependencies
// (from node_modules, as npm install left them) included, the module's
// exports kept in __moat_module, syntax lowered to what the runtime's
// engine runs. No Node.js is needed: the bundler is esbuild's Go API.
func BuildJS(dir, entry, out string, progress io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	res := api.Build(api.BuildOptions{
		AbsWorkingDir: abs,
		EntryPoints:   []string{entry},
		Bundle:        true,
		Write:         false,
		Outfile:       filepath.Join(abs, "out.js"),
		Format:        api.FormatIIFE,
		GlobalName:    "__moat_module",
		Platform:      api.PlatformBrowser,
		// What the engine (goja) runs: classes, generators and promises,
		// with async functions lowered to generators.
		Target:    api.ES2017,
		Charset:   api.CharsetUTF8,
		LogLevel:  api.LogLevelSilent,
		Sourcemap: api.SourceMapNone,
	})
	if len(res.Errors) > 0 {
		var msgs []string
		for _, m := range res.Errors {
			where := ""
			if m.Location != nil {
				where = fmt.Sprintf("%s:%d:%d: ", m.Location.File, m.Location.Line, m.Location.Column)
			}
			msgs = append(msgs, where+m.Text)
		}
		return fmt.Errorf("bundling %s:\n%s", entry, strings.Join(msgs, "\n"))
	}
	if len(res.OutputFiles) != 1 {
		return errors.New("bundling gave no single script")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, res.OutputFiles[0].Contents, 0o644); err != nil {
		return err
	}
	if progress != nil {
		fmt.Fprintf(progress, "  bundled %s (%d bytes)\n", entry, len(res.OutputFiles[0].Contents))
	}
	return nil
}
