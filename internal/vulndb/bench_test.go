package vulndb

import (
	"fmt"
	"runtime"
	"testing"
)

// goFunction is the dependency list of a typical Go function: its modules
// and the standard library at the node's toolchain version.
func goFunction() [][2]string {
	return [][2]string{
		{"stdlib", runtime.Version()},
		{"golang.org/x/text", "v0.23.0"},
		{"golang.org/x/net", "v0.38.0"},
		{"golang.org/x/crypto", "v0.36.0"},
		{"golang.org/x/sys", "v0.31.0"},
		{"golang.org/x/time", "v0.11.0"},
		{"github.com/gin-gonic/gin", "v1.10.0"},
		{"gopkg.in/yaml.v3", "v3.0.1"},
		{"github.com/golang-jwt/jwt/v5", "v5.2.1"},
		{"github.com/tidwall/gjson", "v1.18.0"},
		{"github.com/gorilla/websocket", "v1.5.3"},
		{"github.com/google/uuid", "v1.6.0"},
		{"github.com/nats-io/nats.go", "v1.39.1"},
		{"github.com/prometheus/client_golang", "v1.21.1"},
		{"github.com/spf13/cobra", "v1.9.1"},
	}
}

// replicate returns db's advisories n times over: the originals, then n-1
// copies under new ids and, when renamePackages, new package names.
func replicate(tb testing.TB, db *DB, n int, renamePackages bool) *DB {
	tb.Helper()
	var all []*Advisory
	for _, a := range db.advisories {
		all = append(all, a)
		for i := 1; i < n; i++ {
			c := a.clone()
			c.ID = fmt.Sprintf("%s-R%d", a.ID, i)
			if renamePackages {
				for j := range c.Affected {
					c.Affected[j].Package = fmt.Sprintf("%s/r%d", c.Affected[j].Package, i)
				}
			}
			all = append(all, c)
		}
	}
	out := New(all)
	if out.Len() != n*db.Len() {
		tb.Fatalf("replicated DB holds %d advisories, want %d", out.Len(), n*db.Len())
	}
	return out
}

// BenchmarkScan matches a typical Go function's dependencies against the
// testdata DB and against DBs 10 and 100 times larger. With new package
// names the per-package lists stay as they are and the cost should not
// grow; with the same names ("same-packages") every package has 10 times
// the advisories, and the cost grows with them.
func BenchmarkScan(b *testing.B) {
	base := testdataDB(b)
	deps := goFunction()
	for _, bc := range []struct {
		name string
		db   *DB
	}{
		{"x1", base},
		{"x10", replicate(b, base, 10, true)},
		{"x100", replicate(b, base, 100, true)},
		{"x10-same-packages", replicate(b, base, 10, false)},
	} {
		b.Run(fmt.Sprintf("%s/%d-advisories", bc.name, bc.db.Len()), func(b *testing.B) {
			b.ReportAllocs()
			findings := 0
			for b.Loop() {
				findings = 0
				for _, d := range deps {
					findings += len(bc.db.Match(Go, d[0], d[1]))
				}
			}
			b.ReportMetric(float64(findings), "findings")
		})
	}
}
