package vulndb

import (
	"bytes"
	"compress/gzip"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// matchCase is one dependency and the advisories that affect it, each with
// the Fixed version Match must report.
type matchCase struct {
	eco, name, version string
	want               map[string]string // id -> Fixed
}

func checkMatches(t *testing.T, db *DB, tests []matchCase) {
	t.Helper()
	for _, tt := range tests {
		got := db.Match(tt.eco, tt.name, tt.version)
		if g := ids(got); !maps.Equal(g, tt.want) {
			t.Errorf("Match(%s, %s, %s) = %v, want %v", tt.eco, tt.name, tt.version, g, tt.want)
		}
		if !slices.IsSortedFunc(got, func(a, b Finding) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("Match(%s, %s, %s) not sorted by id: %v", tt.eco, tt.name, tt.version, sortedKeys(ids(got)))
		}
		for _, f := range got {
			if f.Package != tt.name || f.Version != tt.version || f.Ecosystem != canonicalEcosystem(tt.eco) {
				t.Errorf("Match(%s, %s, %s) finding names %s %s %s", tt.eco, tt.name, tt.version, f.Ecosystem, f.Package, f.Version)
			}
		}
	}
}

func TestMatchGo(t *testing.T) {
	db := testdataDB(t)
	checkMatches(t, db, []matchCase{
		{"Go", "golang.org/x/text", "v0.3.2", map[string]string{
			"GO-2020-0015": "0.3.3", "GO-2021-0113": "0.3.7", "GO-2022-1059": "0.3.8", "GO-2026-5970": "0.39.0",
		}},
		// GO-2020-0015 is fixed in 0.3.3, so 0.3.5 is past it.
		{"Go", "golang.org/x/text", "v0.3.5", map[string]string{
			"GO-2021-0113": "0.3.7", "GO-2022-1059": "0.3.8", "GO-2026-5970": "0.39.0",
		}},
		{"Go", "golang.org/x/text", "0.3.5", map[string]string{
			"GO-2021-0113": "0.3.7", "GO-2022-1059": "0.3.8", "GO-2026-5970": "0.39.0",
		}},
		{"Go", "golang.org/x/text", "v0.3.7", map[string]string{"GO-2022-1059": "0.3.8", "GO-2026-5970": "0.39.0"}},
		// A pseudo-version after v0.3.7 and before v0.3.8.
		{"Go", "golang.org/x/text", "v0.3.8-0.20220722155223-a9213eeb770e", map[string]string{"GO-2022-1059": "0.3.8", "GO-2026-5970": "0.39.0"}},
		{"Go", "golang.org/x/text", "v0.3.8", map[string]string{"GO-2026-5970": "0.39.0"}},
		{"Go", "golang.org/x/text", "v0.39.0", map[string]string{}},
		// Module paths match exactly.
		{"Go", "golang.org/x/Text", "v0.3.2", map[string]string{}},
		{"Go", "golang.org/x/text/v2", "v0.3.2", map[string]string{}},
		// Pseudo-versions before and at a fix given as a pseudo-version.
		{"Go", "golang.org/x/crypto", "v0.0.0-20200128174031-69ecbb4d6d5d", map[string]string{
			"GO-2020-0012": "0.0.0-20200220183623-bac4c82f6975", "GO-2021-0356": "0.0.0-20220314234659-1baeb1ce4c0b",
			"GO-2022-0968": "0.0.0-20211202192323-5770296d904e", "GO-2023-2402": "0.17.0", "GO-2024-3321": "0.31.0",
			"GO-2025-3487": "0.35.0", "GO-2025-4134": "0.45.0", "GO-2025-4135": "0.45.0",
		}},
		{"Go", "golang.org/x/crypto", "v0.0.0-20220315160706-3147a52a75dd", map[string]string{
			"GO-2023-2402": "0.17.0", "GO-2024-3321": "0.31.0", "GO-2025-3487": "0.35.0", "GO-2025-4134": "0.45.0", "GO-2025-4135": "0.45.0",
		}},
		{"Go", "golang.org/x/crypto", "v0.45.0", map[string]string{}},
		{"Go", "golang.org/x/net", "v0.0.0-20210405180319-a5a99cb37ef4", map[string]string{
			"GO-2021-0238": "0.0.0-20210520170846-37e1c6afe023", "GO-2022-0288": "0.0.0-20211209124913-491a49abca63",
			"GO-2022-0969": "0.0.0-20220906165146-f3363e06e74c", "GO-2022-1144": "0.4.0", "GO-2023-1571": "0.7.0",
			"GO-2023-1988": "0.13.0", "GO-2023-2102": "0.17.0", "GO-2024-2687": "0.23.0", "GO-2024-3333": "0.33.0",
			"GO-2025-3503": "0.36.0",
		}},
		{"Go", "golang.org/x/net", "v0.36.0", map[string]string{}},
		// stdlib at toolchain versions.
		{"Go", "stdlib", "go1.20.1", map[string]string{
			"GO-2023-1987": "1.20.7", "GO-2023-2102": "1.20.10", "GO-2024-2610": "1.21.8", "GO-2024-2687": "1.21.9",
			"GO-2024-2888": "1.21.11", "GO-2025-3420": "1.22.11", "GO-2025-3503": "1.23.7", "GO-2025-4010": "1.24.8",
			"GO-2026-6088": "1.25.13",
		}},
		{"Go", "stdlib", "go1.20", map[string]string{ // 1.20.0: GO-2023-1571 is fixed in 1.20.1
			"GO-2023-1571": "1.20.1", "GO-2023-1987": "1.20.7", "GO-2023-2102": "1.20.10", "GO-2024-2610": "1.21.8",
			"GO-2024-2687": "1.21.9", "GO-2024-2888": "1.21.11", "GO-2025-3420": "1.22.11", "GO-2025-3503": "1.23.7",
			"GO-2025-4010": "1.24.8", "GO-2026-6088": "1.25.13",
		}},
		{"Go", "stdlib", "go1.21rc3", map[string]string{
			"GO-2023-1987": "1.21.0-rc.4", "GO-2023-2102": "1.21.3", "GO-2024-2610": "1.21.8", "GO-2024-2687": "1.21.9",
			"GO-2024-2888": "1.21.11", "GO-2025-3420": "1.22.11", "GO-2025-3503": "1.23.7", "GO-2025-4010": "1.24.8",
			"GO-2026-6088": "1.25.13",
		}},
		{"Go", "stdlib", "go1.25.1", map[string]string{"GO-2025-4010": "1.25.2", "GO-2026-6088": "1.25.13"}},
		{"Go", "stdlib", "1.26.5", map[string]string{"GO-2026-6088": "1.26.6"}},
		{"Go", "stdlib", "go1.26.8", map[string]string{}},
		{"Go", "stdlib", "go1.27rc2", map[string]string{"GO-2026-6088": "1.27.0-rc.3"}},
		{"Go", "stdlib", "go1.27rc3", map[string]string{}},
		// A pseudo-version introduced event.
		{"Go", "github.com/gin-gonic/gin", "v1.3.0", map[string]string{"GO-2020-0001": "1.6.0", "GO-2021-0052": "1.7.7"}},
		{"Go", "github.com/gin-gonic/gin", "v1.9.0", map[string]string{"GO-2023-1737": "1.9.1"}},
		{"Go", "github.com/gin-gonic/gin", "v1.9.1", map[string]string{}},
		// +incompatible, and a range with no fix.
		{"Go", "github.com/dgrijalva/jwt-go", "v3.2.0+incompatible", map[string]string{"GO-2020-0017": ""}},
		{"Go", "github.com/dgrijalva/jwt-go/v4", "v4.0.0-preview1", map[string]string{}},
		{"Go", "github.com/go-yaml/yaml", "v2.1.0+incompatible", map[string]string{"GO-2020-0036": "", "GO-2021-0061": ""}},
		// A pre-release introduced event.
		{"Go", "github.com/golang-jwt/jwt/v5", "v5.0.0-rc.1", map[string]string{"GO-2025-3553": "5.2.2"}},
		{"Go", "github.com/golang-jwt/jwt/v5", "v5.0.0-rc.0", map[string]string{}},
		{"Go", "github.com/golang-jwt/jwt/v4", "v4.5.0", map[string]string{"GO-2024-3250": "4.5.1", "GO-2025-3553": "4.5.2"}},
		{"Go", "gopkg.in/yaml.v2", "v2.2.2", map[string]string{"GO-2020-0036": "2.2.8", "GO-2021-0061": "2.2.3", "GO-2022-0956": "2.2.4"}},
		// Versions Go cannot read match nothing here.
		{"Go", "golang.org/x/text", "(devel)", map[string]string{}},
		{"Go", "golang.org/x/text", "", map[string]string{}},
	})
}

func TestMatchNPM(t *testing.T) {
	db := testdataDB(t)
	checkMatches(t, db, []matchCase{
		{"npm", "lodash", "4.17.11", map[string]string{"GHSA-35jh-r3h4-6jhm": "4.17.21", "GHSA-jf85-cpcp-j695": "4.17.12", "GHSA-p6mc-m468-83gw": "4.17.20"}},
		{"npm", "lodash", "4.17.15", map[string]string{"GHSA-35jh-r3h4-6jhm": "4.17.21", "GHSA-p6mc-m468-83gw": "4.17.20"}},
		{"npm", "lodash", "v4.17.15", map[string]string{"GHSA-35jh-r3h4-6jhm": "4.17.21", "GHSA-p6mc-m468-83gw": "4.17.20"}},
		{"npm", "lodash", "4.17.21", map[string]string{}},
		{"npm", "lodash", "4.17.21-rc.1", map[string]string{"GHSA-35jh-r3h4-6jhm": "4.17.21"}},
		{"npm", "lodash-es", "4.17.13", map[string]string{"GHSA-35jh-r3h4-6jhm": "4.17.21", "GHSA-jf85-cpcp-j695": "4.17.14", "GHSA-p6mc-m468-83gw": "4.17.20"}},
		// npm names are case-sensitive.
		{"npm", "Lodash", "4.17.15", map[string]string{}},
		// Pre-releases.
		{"npm", "express", "5.0.0-beta.1", map[string]string{"GHSA-rv95-896h-c2vc": "5.0.0-beta.3"}},
		{"npm", "express", "5.0.0-alpha.1", map[string]string{"GHSA-rv95-896h-c2vc": "5.0.0-beta.3"}},
		{"npm", "express", "5.0.0-alpha.0", map[string]string{}},
		{"npm", "express", "5.0.0-beta.3", map[string]string{}},
		{"npm", "express", "4.19.1", map[string]string{"GHSA-rv95-896h-c2vc": "4.19.2"}},
		// Two ranges hold 2.6.5: Fixed is the lowest fix above it.
		{"npm", "node-fetch", "2.6.5", map[string]string{"GHSA-r683-j2x4-v87g": "2.6.7"}},
		{"npm", "node-fetch", "2.6.0", map[string]string{"GHSA-r683-j2x4-v87g": "2.6.7", "GHSA-w7rc-rwvf-8q5r": "2.6.1"}},
		// Only the range holding the version gives its fix.
		{"npm", "node-fetch", "3.0.0-beta.5", map[string]string{"GHSA-r683-j2x4-v87g": "3.1.1", "GHSA-w7rc-rwvf-8q5r": "3.0.0-beta.9"}},
		{"npm", "node-fetch", "3.0.0", map[string]string{"GHSA-r683-j2x4-v87g": "3.1.1"}},
		{"npm", "semver", "7.5.1", map[string]string{"GHSA-c2qf-rxjj-qqgw": "7.5.2"}},
		{"npm", "semver", "6.3.0", map[string]string{"GHSA-c2qf-rxjj-qqgw": "6.3.1"}},
		{"npm", "semver", "5.7.1", map[string]string{"GHSA-c2qf-rxjj-qqgw": "5.7.2"}},
		{"npm", "semver", "7.5.2", map[string]string{}},
		{"npm", "axios", "0.8.0", map[string]string{}},
		{"npm", "axios", "1.5.1", map[string]string{"GHSA-wf5p-g6vw-rhxx": "1.6.0"}},
		{"npm", "minimist", "1.2.5", map[string]string{"GHSA-xvch-5gv4-984h": "1.2.6"}},
		{"npm", "json5", "2.2.1", map[string]string{"GHSA-9c47-m6qq-7p4h": "2.2.2"}},
		{"npm", "lodash", "latest", map[string]string{}},
	})
}

func TestMatchPyPI(t *testing.T) {
	db := testdataDB(t)
	checkMatches(t, db, []matchCase{
		{"PyPI", "requests", "2.31.0", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2"}},
		{"PyPI", "requests", "2.32.0rc1", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2"}},
		{"PyPI", "requests", "2.30.0", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2", "GHSA-j8r2-6x86-q33q": "2.31.0"}},
		{"PyPI", "requests", "2.31.0.dev1", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2", "GHSA-j8r2-6x86-q33q": "2.31.0"}},
		{"PyPI", "requests", "2.19.1", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2", "GHSA-j8r2-6x86-q33q": "2.31.0", "GHSA-x84v-xcm2-53pg": "2.20.0"}},
		{"PyPI", "requests", "2.2.1", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2", "GHSA-x84v-xcm2-53pg": "2.20.0"}},
		{"PyPI", "requests", "2.32.2", map[string]string{}},
		{"PyPI", "requests", "2.32.2.post1", map[string]string{}},
		// An epoch puts 1!1.0 after every version without one.
		{"PyPI", "requests", "1!1.0", map[string]string{}},
		{"PyPI", "Requests", "2.31.0", map[string]string{"GHSA-9wx4-h78v-vm56": "2.32.2"}},
		// Jinja2 and jinja2 are one project (PEP 503).
		{"PyPI", "jinja2", "2.10", map[string]string{"GHSA-462w-v97r-4m45": "2.10.1", "GHSA-h5c8-rqwp-cp95": "3.1.3", "GHSA-h75v-3vvj-5mfj": "3.1.4"}},
		{"PyPI", "Jinja2", "2.10", map[string]string{"GHSA-462w-v97r-4m45": "2.10.1", "GHSA-h5c8-rqwp-cp95": "3.1.3", "GHSA-h75v-3vvj-5mfj": "3.1.4"}},
		{"PyPI", "JINJA2", "3.1.3", map[string]string{"GHSA-h75v-3vvj-5mfj": "3.1.4"}},
		{"pypi", "jinja2", "3.1.4", map[string]string{}},
		{"PyPI", "PyYAML", "5.3.1", map[string]string{"GHSA-8q59-q68h-6hv4": "5.4"}},
		{"PyPI", "pyyaml", "5.4b2", map[string]string{"GHSA-8q59-q68h-6hv4": "5.4"}},
		{"PyPI", "pyyaml", "5.4.dev0", map[string]string{"GHSA-8q59-q68h-6hv4": "5.4"}},
		{"PyPI", "pyyaml", "5.3.1+ubuntu1", map[string]string{"GHSA-8q59-q68h-6hv4": "5.4"}},
		{"PyPI", "pyyaml", "5.4", map[string]string{}},
		{"PyPI", "pyyaml", "5.4.0", map[string]string{}},
		{"PyPI", "pyyaml", "5.4.post1", map[string]string{}},
		{"PyPI", "py-yaml", "5.3.1", map[string]string{}},
		{"PyPI", "urllib3", "2.0.5", map[string]string{"GHSA-34jh-p97f-mpxf": "2.2.2", "GHSA-v845-jxx5-vc9f": "2.0.6"}},
		{"PyPI", "urllib3", "1.26.18", map[string]string{"GHSA-34jh-p97f-mpxf": "1.26.19"}},
		{"PyPI", "Flask", "2.3.1", map[string]string{"GHSA-m2qf-hxjv-5gpq": "2.3.2"}},
		{"PyPI", "flask", "2.2.4", map[string]string{"GHSA-m2qf-hxjv-5gpq": "2.2.5"}},
		{"PyPI", "flask", "not a version", map[string]string{}},
	})
}

func TestMatchFindingFields(t *testing.T) {
	db := testdataDB(t)
	got := db.Match("npm", "lodash", "4.17.20")
	want := []Finding{{
		ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, Summary: "Command Injection in lodash",
		Severity: High, Score: 7.2, Ecosystem: "npm", Package: "lodash", Version: "4.17.20", Fixed: "4.17.21",
	}}
	if !slices.EqualFunc(got, want, findingEqual) {
		t.Fatalf("Match(npm, lodash, 4.17.20) = %+v, want %+v", got, want)
	}
	// The aliases are the caller's.
	got[0].Aliases[0] = "changed"
	if again := db.Match("npm", "lodash", "4.17.20"); again[0].Aliases[0] != "CVE-2021-23337" {
		t.Fatalf("changing a Finding changed the DB: %q", again[0].Aliases)
	}
	if f := db.Match("Go", "golang.org/x/text", "v0.3.7"); len(f) == 0 || f[0].Severity != "" || f[0].Score != 0 {
		t.Fatalf("Go finding %+v, want no severity", f)
	}
}

func findingEqual(a, b Finding) bool {
	return a.ID == b.ID && slices.Equal(a.Aliases, b.Aliases) && a.Summary == b.Summary && a.Severity == b.Severity &&
		a.Score == b.Score && a.Ecosystem == b.Ecosystem && a.Package == b.Package && a.Version == b.Version && a.Fixed == b.Fixed
}

func TestWithdrawnNeverMatches(t *testing.T) {
	withdrawn := mustParse(t, editRecord(t, "Go/GO-2021-0113.json", map[string]any{
		"withdrawn": "2024-06-01T00:00:00Z", "modified": "2024-06-01T00:00:00Z",
	}))
	orig := testdataDB(t)
	if got := ids(orig.Match("Go", "golang.org/x/text", "v0.3.5")); got["GO-2021-0113"] != "0.3.7" {
		t.Fatalf("before withdrawal: %v, want GO-2021-0113", got)
	}
	for name, db := range map[string]*DB{
		"alone":                    New([]*Advisory{withdrawn}),
		"merged after":             orig.Merge(New([]*Advisory{withdrawn})),
		"merged before":            New([]*Advisory{withdrawn}).Merge(orig),
		"in one New":               New([]*Advisory{withdrawn, mustParse(t, readTestdata(t, "Go/GO-2021-0113.json"))}),
		"merged, encoded, decoded": decodeEncoded(t, orig.Merge(New([]*Advisory{withdrawn}))),
	} {
		if got := ids(db.Match("Go", "golang.org/x/text", "v0.3.5")); got["GO-2021-0113"] != "" {
			t.Errorf("%s: Match found withdrawn GO-2021-0113: %v", name, got)
		}
		if c := db.Counts()["Go"]; strings.HasPrefix(name, "merged") && c != 42 || !strings.HasPrefix(name, "merged") && c != 0 {
			t.Errorf("%s: Counts()[Go] = %d; withdrawn advisories are not counted", name, c)
		}
	}
}

func decodeEncoded(tb testing.TB, db *DB) *DB {
	tb.Helper()
	b, err := db.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		tb.Fatalf("Decode(Encode()): %v", err)
	}
	return out
}

// advisory builds a one-package advisory for range tests.
func advisory(id, eco, pkg string, modified time.Time, ranges []Range, versions ...string) *Advisory {
	return &Advisory{ID: id, Modified: modified, Affected: []Affected{{Ecosystem: eco, Package: pkg, Ranges: ranges, Versions: versions}}}
}

func TestMatchRanges(t *testing.T) {
	var t0 time.Time
	db := New([]*Advisory{
		// last_affected is inclusive.
		advisory("LAST", "Go", "m/last", t0, []Range{{Type: "SEMVER", Events: []Event{{Introduced: "1.0.0"}, {LastAffected: "1.2.0"}}}}),
		// Events in any order.
		advisory("UNSORTED", "Go", "m/unsorted", t0, []Range{{Type: "SEMVER", Events: []Event{{Fixed: "2.0.0"}, {Fixed: "1.1.0"}, {Introduced: "1.5.0"}, {Introduced: "0"}}}}),
		// limit bounds the range; "*" is no limit.
		advisory("LIMIT", "npm", "limited", t0, []Range{
			{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Limit: "2.0.0"}}},
			{Type: "ECOSYSTEM", Events: []Event{{Introduced: "5.0.0"}, {Limit: "*"}}},
		}),
		// Listed versions, compared in each ecosystem's canonical form.
		advisory("LISTED-NPM", "npm", "listed", t0, nil, "1.2.3", "2.0.0-beta.1"),
		advisory("LISTED-PYPI", "PyPI", "Listed.Pkg", t0, nil, "1.0", "2.0rc1"),
		advisory("LISTED-GO", "Go", "m/listed", t0, nil, "1.2.3"),
		// An ecosystem this package cannot order: ECOSYSTEM ranges never
		// match, SEMVER ranges and listed versions do.
		advisory("CRATE-ECO", "crates.io", "Serde", t0, []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}}}}, "0.9.0"),
		advisory("CRATE-SEMVER", "crates.io", "Serde", t0, []Range{{Type: "SEMVER", Events: []Event{{Introduced: "1.0.0"}, {Fixed: "1.0.5"}}}}),
		// A PyPI SEMVER range is ordered as SemVer.
		advisory("PYPI-SEMVER", "PyPI", "semverish", t0, []Range{{Type: "SEMVER", Events: []Event{{Introduced: "0"}, {Fixed: "1.0.0"}}}}),
		// Unreadable bounds over-report: introduced as the start, fixed dropped.
		advisory("BAD-FIX", "PyPI", "badfix", t0, []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}, {Fixed: "not-a-version"}}}}),
		advisory("BAD-INTRO", "PyPI", "badintro", t0, []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "junk!"}, {Fixed: "2.0"}}}}),
		// Fixed is the lowest fix above the version across the advisory's
		// entries for the package.
		{ID: "TWO-ENTRIES", Affected: []Affected{
			{Ecosystem: "Go", Package: "m/two", Ranges: []Range{{Type: "SEMVER", Events: []Event{{Introduced: "0"}, {Fixed: "3.0.0"}}}}},
			{Ecosystem: "Go", Package: "m/two", Ranges: []Range{{Type: "SEMVER", Events: []Event{{Introduced: "1.0.0"}, {Fixed: "1.4.0"}}}}},
			{Ecosystem: "Go", Package: "m/other", Ranges: []Range{{Type: "SEMVER", Events: []Event{{Introduced: "0"}}}}},
		}},
		// Equal introduced and fixed: nothing is affected.
		advisory("EMPTY", "Go", "m/empty", t0, []Range{{Type: "SEMVER", Events: []Event{{Fixed: "1.0.0"}, {Introduced: "1.0.0"}}}}),
	})
	checkMatches(t, db, []matchCase{
		{"Go", "m/last", "v0.9.0", map[string]string{}},
		{"Go", "m/last", "v1.0.0", map[string]string{"LAST": ""}},
		{"Go", "m/last", "v1.2.0", map[string]string{"LAST": ""}},
		{"Go", "m/last", "v1.2.1-pre", map[string]string{}},
		{"Go", "m/unsorted", "v1.0.0", map[string]string{"UNSORTED": "1.1.0"}},
		{"Go", "m/unsorted", "v1.2.0", map[string]string{}},
		{"Go", "m/unsorted", "v1.5.0", map[string]string{"UNSORTED": "2.0.0"}},
		{"Go", "m/unsorted", "v2.0.0", map[string]string{}},
		{"npm", "limited", "1.9.9", map[string]string{"LIMIT": ""}},
		{"npm", "limited", "2.0.0", map[string]string{}},
		{"npm", "limited", "99.0.0", map[string]string{"LIMIT": ""}},
		{"npm", "listed", "1.2.3", map[string]string{"LISTED-NPM": ""}},
		{"npm", "listed", "v1.2.3", map[string]string{"LISTED-NPM": ""}},
		{"npm", "listed", "1.2.3+build", map[string]string{"LISTED-NPM": ""}},
		{"npm", "listed", "2.0.0-beta.1", map[string]string{"LISTED-NPM": ""}},
		{"npm", "listed", "1.2.4", map[string]string{}},
		{"npm", "listed", "2.0.0", map[string]string{}},
		{"PyPI", "listed-pkg", "1.0.0", map[string]string{"LISTED-PYPI": ""}},
		{"PyPI", "listed_pkg", "2.0c1", map[string]string{"LISTED-PYPI": ""}},
		{"PyPI", "listed_pkg", "2.0", map[string]string{}},
		{"Go", "m/listed", "v1.2.3", map[string]string{"LISTED-GO": ""}},
		{"crates.io", "Serde", "0.9.0", map[string]string{"CRATE-ECO": ""}},
		{"crates.io", "Serde", "0.9.1", map[string]string{}},
		{"crates.io", "Serde", "1.0.2", map[string]string{"CRATE-SEMVER": "1.0.5"}},
		{"crates.io", "serde", "1.0.2", map[string]string{}},
		{"PyPI", "semverish", "0.9.0", map[string]string{"PYPI-SEMVER": "1.0.0"}},
		{"PyPI", "semverish", "0.9", map[string]string{"PYPI-SEMVER": "1.0.0"}},
		{"PyPI", "semverish", "0.9rc1", map[string]string{}},
		{"PyPI", "badfix", "0.9", map[string]string{}},
		{"PyPI", "badfix", "99", map[string]string{"BAD-FIX": ""}},
		{"PyPI", "badintro", "0.1", map[string]string{"BAD-INTRO": "2.0"}},
		{"PyPI", "badintro", "2.0", map[string]string{}},
		{"Go", "m/two", "v1.2.0", map[string]string{"TWO-ENTRIES": "1.4.0"}},
		{"Go", "m/two", "v1.5.0", map[string]string{"TWO-ENTRIES": "3.0.0"}},
		{"Go", "m/other", "v1.5.0", map[string]string{"TWO-ENTRIES": ""}},
		{"Go", "m/empty", "v1.0.0", map[string]string{}},
	})
}

func TestNilAndEmptyDB(t *testing.T) {
	for name, db := range map[string]*DB{"nil": nil, "zero": {}, "New(nil)": New(nil)} {
		if f := db.Match("Go", "stdlib", "go1.20.1"); f != nil {
			t.Errorf("%s: Match = %v, want nil", name, f)
		}
		if c := db.Counts(); c == nil || len(c) != 0 || db.Len() != 0 {
			t.Errorf("%s: Counts = %v, Len = %d, want empty", name, c, db.Len())
		}
		if m := db.Merge(nil); m == nil || m.Len() != 0 {
			t.Errorf("%s: Merge(nil) = %v", name, m)
		}
		if d := decodeEncoded(t, db); d.Len() != 0 {
			t.Errorf("%s: decoded Len = %d", name, d.Len())
		}
	}
}

func TestNewCopies(t *testing.T) {
	a := mustParse(t, readTestdata(t, "Go/GO-2021-0113.json"))
	db := New([]*Advisory{a})
	a.Affected[0].Ranges[0].Events[1].Fixed = "9.9.9"
	a.Affected[0].Package = "changed"
	if got := ids(db.Match("Go", "golang.org/x/text", "v0.3.7")); len(got) != 0 {
		t.Fatalf("changing an advisory after New changed the DB: %v", got)
	}
}

func TestMergeNewerWins(t *testing.T) {
	old, mid, late := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := func(fixed string) []Range {
		return []Range{{Type: "SEMVER", Events: []Event{{Introduced: "0"}, {Fixed: fixed}}}}
	}
	a := New([]*Advisory{
		advisory("A", "Go", "m", mid, rng("1.0.0")),
		advisory("B", "Go", "m", mid, rng("1.0.0")),
		advisory("C", "Go", "m", mid, rng("1.0.0")),
	})
	b := New([]*Advisory{
		advisory("A", "Go", "m", late, rng("2.0.0")), // newer: wins
		advisory("B", "Go", "m", old, rng("2.0.0")),  // older: loses
		advisory("C", "Go", "m", mid, rng("2.0.0")),  // tie: the later DB wins
		advisory("D", "npm", "x", old, rng("2.0.0")),
	})
	want := map[string]string{"A": "2.0.0", "B": "1.0.0", "C": "2.0.0"}
	if got := ids(a.Merge(b).Match("Go", "m", "v0.5.0")); !maps.Equal(got, want) {
		t.Errorf("a.Merge(b) = %v, want %v", got, want)
	}
	if got := a.Merge(b).Counts(); !maps.Equal(got, map[string]int{"Go": 3, "npm": 1}) {
		t.Errorf("a.Merge(b).Counts() = %v", got)
	}
	want = map[string]string{"A": "2.0.0", "B": "1.0.0", "C": "1.0.0"}
	if got := ids(b.Merge(a).Match("Go", "m", "v0.5.0")); !maps.Equal(got, want) {
		t.Errorf("b.Merge(a) = %v, want %v", got, want)
	}
	// The inputs do not change.
	if got := ids(a.Match("Go", "m", "v1.5.0")); len(got) != 0 || a.Len() != 3 || b.Len() != 4 {
		t.Errorf("Merge changed its inputs: %v", got)
	}
	// The same within one New: later Modified, then later in the list.
	n := New([]*Advisory{advisory("A", "Go", "m", late, rng("3.0.0")), advisory("A", "Go", "m", mid, rng("4.0.0")), advisory("C", "Go", "m", mid, rng("4.0.0")), advisory("C", "Go", "m", mid, rng("5.0.0"))})
	if got := ids(n.Match("Go", "m", "v0.5.0")); !maps.Equal(got, map[string]string{"A": "3.0.0", "C": "5.0.0"}) {
		t.Errorf("New with repeated ids: %v", got)
	}
}

func TestEncodeDecode(t *testing.T) {
	db := testdataDB(t)
	b, err := db.Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, err := db.Encode()
	if err != nil || !bytes.Equal(b, again) {
		t.Fatalf("Encode is not deterministic: %v", err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode()): %v", err)
	}
	if b2, _ := out.Encode(); !bytes.Equal(b, b2) {
		t.Fatal("Decode(Encode(db)).Encode() differs from Encode(db)")
	}
	if !maps.Equal(out.Counts(), db.Counts()) {
		t.Fatalf("decoded Counts = %v, want %v", out.Counts(), db.Counts())
	}
	for _, q := range [][3]string{{"Go", "stdlib", "go1.20.1"}, {"npm", "lodash", "4.17.15"}, {"PyPI", "jinja2", "2.10"}} {
		if got, want := out.Match(q[0], q[1], q[2]), db.Match(q[0], q[1], q[2]); !slices.EqualFunc(got, want, findingEqual) {
			t.Errorf("decoded Match%v = %v, want %v", q, got, want)
		}
	}
	t.Logf("encoded %d advisories in %d bytes", db.Len(), len(b))
}

func gz(tb testing.TB, s string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeRefuses(t *testing.T) {
	good, err := testdataDB(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	const head = `{"format":"moat-vulndb","version":1,"advisories":`
	tests := []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"nil", nil, "not gzip"},
		{"text", []byte("hello"), "not gzip"},
		{"raw JSON", []byte(head + `[]}`), "not gzip"},
		{"truncated", good[:len(good)-20], "unexpected EOF"},
		{"flipped byte", flipped, ""},
		{"gzip of garbage", gz(t, "garbage"), "invalid character"},
		{"gzip of nothing", gz(t, ""), "EOF"},
		{"other format", gz(t, `{"format":"other","version":1,"advisories":[]}`), `format "other" version 1`},
		{"other version", gz(t, `{"format":"moat-vulndb","version":2,"advisories":[]}`), "version 2"},
		{"unknown field", gz(t, `{"format":"moat-vulndb","version":1,"advisories":[],"extra":1}`), "unknown field"},
		{"trailing data", gz(t, head+`[]} {}`), "data after the database"},
		{"trailing garbage", gz(t, head+`[]} x`), "invalid character"},
		{"null advisory", gz(t, head+`[null]}`), "advisories[0]: null"},
		{"bad id", gz(t, head+`[{"id":"has space","modified":"2024-01-01T00:00:00Z"}]}`), "not printable ASCII"},
		{"repeated id", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z"},{"id":"A","modified":"2024-01-01T00:00:00Z"}]}`), "A appears twice"},
		{"bad range type", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"ecosystem":"Go","package":"m","ranges":[{"type":"GIT","events":[{"introduced":"0"}]}]}]}]}`), `unknown range type "GIT"`},
		{"two-key event", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"ecosystem":"Go","package":"m","ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}]}`), "2 of introduced"},
		{"empty package", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"ecosystem":"Go","package":""}]}]}`), "affected[0].package"},
		{"bad severity", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z","severity":"BAD"}]}`), `unknown severity "BAD"`},
		{"bad score", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z","score":11}]}`), "not a CVSS score"},
		{"uncleaned summary", gz(t, head+`[{"id":"A","modified":"2024-01-01T00:00:00Z","summary":"a\u001bb"}]}`), "summary"},
		{"wrong type", gz(t, head+`{}}`), "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Decode(tt.b)
			if err == nil || !errors.Is(err, ErrInvalidDB) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decode(%s) = %v, %v, want ErrInvalidDB with %q", tt.name, db, err, tt.wantErr)
			}
		})
	}
}
