package inventory

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
)

func TestParseSBOM(t *testing.T) {
	for _, file := range []string{
		"sbom/app.cdx.json",
		"sbom/app.spdx.json",
		"sbom/legacy.spdx.json",
		"sbom/minimal-1.4.cdx.json",
		"sbom/minimal-1.6.cdx.json",
	} {
		t.Run(path.Base(file), func(t *testing.T) {
			cs, err := ParseSBOM(path.Base(file), readTestdata(t, file))
			if err != nil {
				t.Fatalf("ParseSBOM(%s): %v", file, err)
			}
			checkSorted(t, cs)
			checkGolden(t, file+".golden", render(cs))
		})
	}
}

// checkSorted fails unless cs is sorted and has no duplicates.
func checkSorted(tb testing.TB, cs []Component) {
	tb.Helper()
	for i := 1; i < len(cs); i++ {
		if compareComponents(cs[i-1], cs[i]) >= 0 {
			tb.Fatalf("components %d and %d out of order or repeated: %+v, %+v", i-1, i, cs[i-1], cs[i])
		}
	}
}

func TestParseSBOMRefused(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"bomFormat":"CycloneDX","specVersion":"1.5","components":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"p%d","version":"1.0.0","purl":"pkg:npm/p%d@1.0.0"}`, i, i)
		}
		b.WriteString("]}")
		return b.String()
	}
	nested := func(n int) string {
		return `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[` +
			strings.Repeat(`{"name":"n","components":[`, n) + strings.Repeat("]}", n) + "]}"
	}
	tests := []struct {
		name, doc string
		want      error
		msg       string // in the error, beside the file name
	}{
		{"not JSON", "<bom/>", ErrMalformed, "invalid character"},
		{"truncated", `{"bomFormat":"CycloneDX","components":[{"name":`, ErrMalformed, "unexpected end"},
		{"trailing data", `{"bomFormat":"CycloneDX","specVersion":"1.5"} {}`, ErrMalformed, "after the JSON"},
		{"top array", `[]`, ErrMalformed, "want an object"},
		{"null", `null`, ErrMalformed, "empty document"},
		{"empty object", `{}`, ErrMalformed, "empty document"},
		{"components not array", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":{}}`, ErrMalformed, "components: want an array, found an object"},
		{"purl a number", "{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\",\n\"components\":[{\"purl\":7}]}", ErrMalformed, ":2: malformed: components[0].purl: want a string, found a number"},
		{"CycloneDX 1.2", `{"bomFormat":"CycloneDX","specVersion":"1.2","components":[]}`, ErrUnsupported, `specVersion "1.2"`},
		{"bomFormat other", `{"bomFormat":"SWID","specVersion":"1.5"}`, ErrUnsupported, "not CycloneDX"},
		{"SPDX 3", `{"spdxVersion":"SPDX-3.0","packages":[]}`, ErrUnsupported, `spdxVersion "SPDX-3.0"`},
		{"neither", `{"name":"x","dependencies":[]}`, ErrUnsupported, "neither"},
		{"both", `{"bomFormat":"CycloneDX","specVersion":"1.5","spdxVersion":"SPDX-2.3"}`, ErrMalformed, "both"},
		{"nested components", nested(maxNesting + 1), ErrTooLarge, "nested deeper"},
		{"deep arrays", `{"bomFormat":"CycloneDX","x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + "}", ErrTooLarge, "nested deeper"},
		{"too many components", many(MaxComponents + 1), ErrTooLarge, "more than 100000 components"},
		{"too big", `{"bomFormat":"CycloneDX","pad":"` + strings.Repeat("x", MaxFileSize) + `"}`, ErrTooLarge, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := ParseSBOM("bad.json", []byte(tt.doc))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseSBOM = %d components, %v; want an error wrapping %v", len(cs), err, tt.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "bad.json") || !strings.Contains(msg, tt.msg) {
				t.Errorf("ParseSBOM error = %q, want it to name bad.json and say %q", msg, tt.msg)
			}
		})
	}
}

func TestParseSBOMManyAccepted(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"spdxVersion":"SPDX-2.3","packages":[`)
	for i := range MaxComponents {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"SPDXID":"p%d","name":"p%d","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:cargo/p%d@0.1.0"}]}`, i, i, i)
	}
	b.WriteString("]}")
	cs, err := ParseSBOM("big.spdx.json", []byte(b.String()))
	if err != nil || len(cs) != MaxComponents {
		t.Fatalf("ParseSBOM(%d packages) = %d components, %v", MaxComponents, len(cs), err)
	}
}

func TestParsePURL(t *testing.T) {
	tests := []struct {
		purl           string
		eco, name, ver string
	}{
		{"pkg:golang/golang.org/x/text@v0.3.5", "Go", "golang.org/x/text", "v0.3.5"},
		{"pkg:golang/github.com/gorilla/websocket@1.5.1", "Go", "github.com/gorilla/websocket", "v1.5.1"},
		{"pkg:golang/stdlib@go1.22.1", "Go", "stdlib", "1.22.1"},
		{"pkg:golang/stdlib@v1.22.1", "Go", "stdlib", "1.22.1"},
		{"pkg:golang/github.com/docker/docker@v24.0.7%2Bincompatible", "Go", "github.com/docker/docker", "v24.0.7+incompatible"},
		{"pkg:npm/%40babel/core@7.24.0", "npm", "@babel/core", "7.24.0"},
		{"pkg:npm/@babel/core@7.24.0", "npm", "@babel/core", "7.24.0"},
		{"pkg:npm/babel/core@7.24.0", "npm", "@babel/core", "7.24.0"},
		{"pkg:NPM/lodash@4.17.21?foo=bar#lib/x.js", "npm", "lodash", "4.17.21"},
		{"pkg://npm/lodash@4.17.21", "npm", "lodash", "4.17.21"},
		{"pkg:pypi/Django@4.2.1", "PyPI", "Django", "4.2.1"},
		{"pkg:cargo/serde@1.0.197", "crates.io", "serde", "1.0.197"},
		{"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "Maven", "org.apache.logging.log4j:log4j-core", "2.14.1"},
		{"pkg:composer/laravel/framework@10.0.0", "Packagist", "laravel/framework", "10.0.0"},
		{"pkg:npm/%40scope/name", "npm", "@scope/name", ""},
		{"pkg:npm/@scope/name", "npm", "@scope/name", ""},
	}
	for _, tt := range tests {
		p, ok := parsePURL(tt.purl)
		if !ok {
			t.Errorf("parsePURL(%q) failed", tt.purl)
			continue
		}
		eco, name, ver, ok := p.component()
		if !ok || eco != tt.eco || name != tt.name || ver != tt.ver {
			t.Errorf("parsePURL(%q).component() = %q, %q, %q, %v; want %q, %q, %q", tt.purl, eco, name, ver, ok, tt.eco, tt.name, tt.ver)
		}
	}
	for _, bad := range []string{"", "npm/lodash@1", "pkg:", "pkg:npm", "pkg:/lodash", "pkg:npm/", "pkg:npm/a//b", "pkg:npm/%zz@1", "pkg:np m/x@1", "pkg:npm/x@%zz"} {
		if p, ok := parsePURL(bad); ok {
			t.Errorf("parsePURL(%q) = %+v, want it refused", bad, p)
		}
	}
}

func TestPURLOf(t *testing.T) {
	tests := []struct {
		c    Component
		want string
	}{
		{Component{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.3.5"}, "pkg:golang/golang.org/x/text@v0.3.5"},
		{Component{Ecosystem: "Go", Name: "stdlib", Version: "1.26.8"}, "pkg:golang/stdlib@1.26.8"},
		{Component{Ecosystem: "Go", Name: "github.com/docker/docker", Version: "v24.0.7+incompatible"}, "pkg:golang/github.com/docker/docker@v24.0.7%2Bincompatible"},
		{Component{Ecosystem: "npm", Name: "@babel/core", Version: "7.24.0"}, "pkg:npm/%40babel/core@7.24.0"},
		{Component{Ecosystem: "PyPI", Name: "Django", Version: "4.2.1"}, "pkg:pypi/Django@4.2.1"},
		{Component{Ecosystem: "crates.io", Name: "serde", Version: "1.0.197"}, "pkg:cargo/serde@1.0.197"},
		{Component{Ecosystem: "Maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1"}, "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
		{Component{Ecosystem: "", Name: "vendored", Version: "1"}, ""},
		{Component{Ecosystem: "npm", Name: "a//b", Version: "1"}, ""},
	}
	for _, tt := range tests {
		if got := purlOf(tt.c); got != tt.want {
			t.Errorf("purlOf(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}

// TestSBOMSources checks each component's Source names the file.
func TestSBOMSources(t *testing.T) {
	cs, err := ParseSBOM("dist/app.cdx.json", readTestdata(t, "sbom/app.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(cs, func(c Component) bool { return c.Source != "sbom:dist/app.cdx.json" }); i >= 0 {
		t.Errorf("component %+v: Source is not sbom:dist/app.cdx.json", cs[i])
	}
}
