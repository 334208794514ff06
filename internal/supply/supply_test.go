package supply

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/inventory"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/testwasm"
	"github.com/moatfn/moat/internal/vulndb"
)

func testdata(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), ".."}, parts...)...)
}

func goDB(t testing.TB) *vulndb.DB {
	t.Helper()
	db, err := vulndb.Import(testdata("vulndb", "testdata", "osv", "Go", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestEvaluatePolicy(t *testing.T) {
	db := goDB(t)
	comps := []inventory.Component{{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.3.5"}}
	m := &manifest.Manifest{Name: "f"}
	now := time.Now()
	decisions := func(p Policy, m *manifest.Manifest, exc []Exception) string {
		var out []string
		for _, f := range Evaluate(db, comps, m, p, exc, now) {
			out = append(out, f.ID+":"+f.Decision)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		name string
		p    Policy
		m    *manifest.Manifest
		exc  []Exception
		want string
	}{
		{"defaults: unknown severity is high, high blocks", Policy{}, m, nil, "block block block"},
		{"unknown counted as medium", Policy{Unknown: "medium"}, m, nil, "warn warn warn"},
		{"the function tightens to medium", Policy{Unknown: "medium"}, &manifest.Manifest{Name: "f", Vulnerabilities: manifest.VulnPolicy{Block: "medium"}}, nil, "block block block"},
		{"the function cannot loosen", Policy{}, &manifest.Manifest{Name: "f", Vulnerabilities: manifest.VulnPolicy{Block: "critical"}}, nil, "block block block"},
		{"none never blocks", Policy{Block: "none"}, m, nil, "warn warn warn"},
		{"an exception by alias", Policy{}, m, []Exception{{ID: "CVE-2021-38561", Function: "f", Until: now.Add(time.Hour)}}, "allowed block block"},
		{"an expired exception", Policy{}, m, []Exception{{ID: "GO-2021-0113", Function: "f", Until: now.Add(-time.Second)}}, "block block block"},
		{"another function's exception", Policy{}, m, []Exception{{ID: "GO-2021-0113", Function: "g", Until: now.Add(time.Hour)}}, "block block block"},
	} {
		parts := strings.Fields(c.want)
		want := ""
		for i, id := range []string{"GO-2021-0113", "GO-2022-1059", "GO-2026-5970"} {
			if i > 0 {
				want += " "
			}
			want += id + ":" + parts[i]
		}
		if got := decisions(c.p, c.m, c.exc); got != want {
			t.Errorf("%s: %s, want %s", c.name, got, want)
		}
	}
	f := Evaluate(db, comps, m, Policy{}, nil, now)[0]
	if f.Fixed != "v0.3.7" || !f.Assumed || f.Severity != "high" || len(f.Aliases) == 0 {
		t.Errorf("finding %+v", f)
	}
}

// BenchmarkDeployCheck is what the supply-chain check adds to a deploy: the
// Go build info read from a real module, matched against the Go advisories
// of testdata.
func BenchmarkDeployCheck(b *testing.B) {
	db := goDB(b)
	wasm, err := os.ReadFile(testwasm.BuildDir(b, testdata("inventory", "testdata", "vulnerable")))
	if err != nil {
		b.Fatal(err)
	}
	m := &manifest.Manifest{Name: "f", Module: "f.wasm"}
	files := map[string][]byte{"f.wasm": wasm}
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		inv, err := Inventory(m, files)
		if err != nil {
			b.Fatal(err)
		}
		if len(Evaluate(db, inv.Components, m, Policy{}, nil, time.Now())) == 0 {
			b.Fatal("no findings")
		}
	}
}
