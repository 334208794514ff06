package api

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRoutesDocumented holds docs/api.md to Routes(): every route has a row
// in the roles table, with the roles it really has, and a row describing it.
func TestRoutesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	roles := []string{"admin", "deployer", "auditor", "invoker", "publisher"}
	row := regexp.MustCompile("(?m)^\\| `([A-Z]+ /[^`]*)` \\| (yes|no) \\| (yes|no) \\| (yes|no) \\| (yes|no|[^|]*) \\| (yes|no|[^|]*) \\|$")
	table := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		table[m[1]] = m[2:]
	}
	for _, r := range Routes() {
		cells, ok := table[r.Pattern]
		if !ok {
			t.Errorf("docs/api.md: no row for %s in the roles table", r.Pattern)
			continue
		}
		for i, role := range roles {
			yes := cells[i] == "yes" || strings.HasPrefix(cells[i], "yes, ")
			if want := slices.Contains(r.Roles, role); yes != want {
				t.Errorf("docs/api.md: %s says %s for %s, the code %v", r.Pattern, cells[i], role, want)
			}
		}
		method, path, _ := strings.Cut(r.Pattern, " ")
		if path == "/metrics" {
			continue
		}
		if !strings.Contains(doc, "| `"+method+" "+path) {
			t.Errorf("docs/api.md: %s is not described in the routes table", r.Pattern)
		}
	}
}
