package vulndb

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseOSVTestdata(t *testing.T) {
	want := map[string]int{"Go": 43, "npm": 10, "PyPI": 10} // testdata/osv/README.md
	got := map[string]int{}
	for _, path := range recordFiles(t, "") {
		eco := filepath.Base(filepath.Dir(path))
		rel, _ := filepath.Rel(osvDir, path)
		a, err := ParseOSV(readTestdata(t, rel))
		if err != nil {
			t.Errorf("ParseOSV(%s): %v", rel, err)
			continue
		}
		if id := strings.TrimSuffix(filepath.Base(path), ".json"); a.ID != id {
			t.Errorf("ParseOSV(%s).ID = %q, want %q", rel, a.ID, id)
		}
		if err := a.validate(); err != nil {
			t.Errorf("ParseOSV(%s) gave what validate refuses: %v", rel, err)
		}
		if len(a.Affected) == 0 {
			t.Errorf("ParseOSV(%s): no affected packages", rel)
		}
		for _, af := range a.Affected {
			if af.Ecosystem != eco {
				t.Errorf("ParseOSV(%s): ecosystem %q in folder %s", rel, af.Ecosystem, eco)
			}
		}
		got[eco]++
	}
	for eco, n := range want {
		if got[eco] != n {
			t.Errorf("%s: %d records parse, want %d", eco, got[eco], n)
		}
	}
}

func TestParseOSVKeeps(t *testing.T) {
	a := mustParse(t, readTestdata(t, "Go/GO-2022-0288.json"))
	if a.Summary == "" || a.Severity != "" || a.Score != 0 {
		t.Errorf("GO-2022-0288: summary %q severity %q score %v, want a summary and no severity", a.Summary, a.Severity, a.Score)
	}
	if !a.Modified.IsZero() || a.Published.IsZero() || !a.Withdrawn.IsZero() {
		t.Errorf("GO-2022-0288: modified %v published %v withdrawn %v", a.Modified, a.Published, a.Withdrawn)
	}
	stdlib := a.Affected[0]
	wantEvents := []Event{{Introduced: "0"}, {Fixed: "1.16.12"}, {Introduced: "1.17.0-0"}, {Fixed: "1.17.5"}}
	if stdlib.Package != "stdlib" || len(stdlib.Ranges) != 1 || stdlib.Ranges[0].Type != "SEMVER" || !slices.Equal(stdlib.Ranges[0].Events, wantEvents) {
		t.Errorf("GO-2022-0288 affected[0] = %+v, want stdlib with events %v", stdlib, wantEvents)
	}

	a = mustParse(t, readTestdata(t, "Go/GO-2025-4010.json"))
	if want := []string{"CVE-2025-47912"}; !slices.Equal(a.Aliases, want) {
		t.Errorf("GO-2025-4010 aliases = %q, want %q (listed twice upstream)", a.Aliases, want)
	}

	a = mustParse(t, readTestdata(t, "npm/GHSA-35jh-r3h4-6jhm.json"))
	if want := time.Date(2022, 2, 8, 21, 35, 9, 0, time.UTC); !a.Modified.Equal(want) {
		t.Errorf("GHSA-35jh-r3h4-6jhm modified = %v, want %v", a.Modified, want)
	}
	if len(a.Affected) != 2 || a.Affected[1].Package != "lodash-es" {
		t.Errorf("GHSA-35jh-r3h4-6jhm affected = %+v", a.Affected)
	}

	long := strings.Repeat("é", 400)
	a = mustParse(t, editRecord(t, "Go/GO-2020-0015.json", map[string]any{"summary": "\x1b[31mred\x1b[0m\u202e " + long}))
	if n := utf8.RuneCountInString(a.Summary); n != MaxSummaryLen {
		t.Errorf("summary of %d characters cut to %d, want %d", 400, n, MaxSummaryLen)
	}
	if strings.ContainsAny(a.Summary, "\x1b\u202e") || !strings.HasPrefix(a.Summary, "[31mred [0m") {
		t.Errorf("summary = %q, want control characters replaced", a.Summary[:20])
	}
	// A cut that ends in a space does not keep it.
	a = mustParse(t, editRecord(t, "Go/GO-2020-0015.json", map[string]any{"summary": strings.Repeat("x", MaxSummaryLen-1) + " \t" + long}))
	if want := strings.Repeat("x", MaxSummaryLen-1); a.Summary != want {
		t.Errorf("summary cut at a space = %q…, want %d x", a.Summary[MaxSummaryLen-5:], MaxSummaryLen-1)
	}
	if err := a.validate(); err != nil {
		t.Errorf("validate of a cut summary: %v", err)
	}

	// GIT ranges are read, checked and dropped; so are package-less entries.
	a = mustParse(t, editRecord(t, "Go/GO-2020-0015.json", map[string]any{"affected": []any{
		map[string]any{"ranges": []any{map[string]any{"type": "GIT", "repo": "https://example.com/r", "events": []any{map[string]any{"introduced": "0"}, map[string]any{"fixed": "abc123"}}}}},
		map[string]any{"package": map[string]any{"ecosystem": "Go", "name": "example.com/m"}, "ranges": []any{
			map[string]any{"type": "GIT", "repo": "https://example.com/r", "events": []any{map[string]any{"introduced": "0"}}},
			map[string]any{"type": "SEMVER", "events": []any{map[string]any{"introduced": "0"}, map[string]any{"last_affected": "1.0.0"}}},
		}},
	}}))
	if len(a.Affected) != 1 || len(a.Affected[0].Ranges) != 1 || a.Affected[0].Ranges[0].Type != "SEMVER" {
		t.Errorf("affected = %+v, want only the SEMVER range of example.com/m", a.Affected)
	}
}

func TestParseOSVSeverity(t *testing.T) {
	tests := []struct {
		name      string
		record    []byte
		wantSev   string
		wantScore float64
	}{
		// CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H, by hand: ISS = 1-0.44^3 =
		// 0.914816, impact 6.42*ISS = 5.8731, exploitability
		// 8.22*0.85*0.77*0.27*0.85 = 1.2347, sum 7.1078, rounded up 7.2.
		{"GHSA-35jh-r3h4-6jhm", readTestdata(t, "npm/GHSA-35jh-r3h4-6jhm.json"), High, 7.2},
		// The record's database_specific says CRITICAL; the vector gives 9.8.
		{"GHSA-8q59-q68h-6hv4", readTestdata(t, "PyPI/GHSA-8q59-q68h-6hv4.json"), Critical, 9.8},
		// CVSS:3.0, scope changed: 8.6 (see TestCVSS3Score).
		{"GHSA-462w-v97r-4m45", readTestdata(t, "PyPI/GHSA-462w-v97r-4m45.json"), High, 8.6},
		// GHSA says MODERATE; AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N is 5.6.
		{"GHSA-9wx4-h78v-vm56", readTestdata(t, "PyPI/GHSA-9wx4-h78v-vm56.json"), Medium, 5.6},
		// No vector: database_specific.severity MODERATE.
		{"GHSA-wf5p-g6vw-rhxx", readTestdata(t, "npm/GHSA-wf5p-g6vw-rhxx.json"), Medium, 0},
		// The Go database gives none.
		{"GO-2021-0113", readTestdata(t, "Go/GO-2021-0113.json"), "", 0},
		// A CVSS v4 vector alone is scored (before the database's word).
		{"v4 only", editRecord(t, "npm/GHSA-wf5p-g6vw-rhxx.json", map[string]any{
			"severity": []any{map[string]any{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}},
		}), Critical, 9.3},
		// A malformed v4 vector falls back to the database's word.
		{"v4 malformed", editRecord(t, "npm/GHSA-wf5p-g6vw-rhxx.json", map[string]any{
			"severity": []any{map[string]any{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}},
		}), Medium, 0},
		{"v4 and v3", editRecord(t, "npm/GHSA-wf5p-g6vw-rhxx.json", map[string]any{
			"severity": []any{
				map[string]any{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
				map[string]any{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
			},
		}), Critical, 9.8},
		// A broken vector is not an error; the database's word is used.
		{"bad vector", editRecord(t, "npm/GHSA-35jh-r3h4-6jhm.json", map[string]any{
			"severity": []any{map[string]any{"type": "CVSS_V3", "score": "CVSS:3.1/AV:Q"}},
		}), High, 0},
		{"low word", editRecord(t, "npm/GHSA-35jh-r3h4-6jhm.json", map[string]any{
			"severity": nil, "database_specific": map[string]any{"severity": "low"},
		}), Low, 0},
		{"unknown word", editRecord(t, "npm/GHSA-35jh-r3h4-6jhm.json", map[string]any{
			"severity": nil, "database_specific": map[string]any{"severity": "SEVERE"},
		}), "", 0},
		{"word not a string", editRecord(t, "npm/GHSA-35jh-r3h4-6jhm.json", map[string]any{
			"severity": nil, "database_specific": map[string]any{"severity": 3},
		}), "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustParse(t, tt.record)
			if a.Severity != tt.wantSev || a.Score != tt.wantScore {
				t.Errorf("ParseOSV(%s) severity, score = %q, %v, want %q, %v", tt.name, a.Severity, a.Score, tt.wantSev, tt.wantScore)
			}
		})
	}
}

func TestParseOSVRefuses(t *testing.T) {
	const ok = `"id":"X-1","modified":"2024-01-01T00:00:00Z"`
	withRange := func(rng string) string {
		return `{` + ok + `,"affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[` + rng + `]}]}`
	}
	tests := []struct {
		name, record, wantErr string
	}{
		{"empty", ``, "not JSON"},
		{"not JSON", `{"id": `, "not JSON"},
		{"not JSON at line 3", "{\n\"id\": \"X\",\n,}", "line 3: not JSON"},
		{"array", `[{"id":"X"}]`, "not a JSON object but an array"},
		{"null", `null`, "not a JSON object but null"},
		{"string", `"GO-2020-0001"`, "not a JSON object but a string"},
		{"no id", `{"modified":"2024-01-01T00:00:00Z"}`, "id: missing"},
		{"null id", `{"id":null,"modified":"2024-01-01T00:00:00Z"}`, "id: missing"},
		{"id a number", `{"id":5,"modified":"2024-01-01T00:00:00Z"}`, "id: want a string, got a number"},
		{"id empty", `{"id":"","modified":"2024-01-01T00:00:00Z"}`, "id: empty"},
		{"id too long", `{"id":"` + strings.Repeat("A", 201) + `","modified":"2024-01-01T00:00:00Z"}`, "id: 201 characters, over the 200 cap"},
		{"id with a space", `{"id":"GO 1","modified":"2024-01-01T00:00:00Z"}`, "id: byte 2 is not printable ASCII"},
		{"id with an escape", `{"id":"GO-\u001b[2J","modified":"2024-01-01T00:00:00Z"}`, "id: byte 3 is not printable ASCII"},
		{"no modified", `{"id":"X-1"}`, "X-1: modified: missing"},
		{"bad time", `{"id":"X-1","modified":"yesterday"}`, `X-1: modified: "yesterday" is not an RFC 3339 time`},
		{"bad withdrawn", `{` + ok + `,"withdrawn":"2024-13-01T00:00:00Z"}`, "withdrawn: "},
		{"summary an object", `{` + ok + `,"summary":{}}`, "summary: want a string, got an object"},
		{"aliases a string", `{` + ok + `,"aliases":"CVE-1"}`, "aliases: want an array, got a string"},
		{"alias too long", `{` + ok + `,"aliases":["` + strings.Repeat("C", 201) + `"]}`, "aliases[0]: 201 characters"},
		{"severity not objects", `{` + ok + `,"severity":["CVSS"]}`, "severity[0]: want an object, got a string"},
		{"severity without type", `{` + ok + `,"severity":[{"score":"x"}]}`, "severity[0].type: missing"},
		{"affected an object", `{` + ok + `,"affected":{}}`, "affected: want an array, got an object"},
		{"affected not objects", `{` + ok + `,"affected":[1]}`, "affected[0]: want an object, got a number"},
		{"package without name", `{` + ok + `,"affected":[{"package":{"ecosystem":"Go"}}]}`, "affected[0].package.name: empty"},
		{"package without ecosystem", `{` + ok + `,"affected":[{"package":{"name":"m"}}]}`, "affected[0].package.ecosystem: empty"},
		{"name with a newline", `{` + ok + `,"affected":[{"package":{"ecosystem":"Go","name":"m\nx"}}]}`, "affected[0].package.name: control character at byte 1"},
		{"versions not strings", `{` + ok + `,"affected":[{"package":{"ecosystem":"Go","name":"m"},"versions":[1]}]}`, "affected[0].versions[0]: want a string"},
		{"unknown range type", withRange(`{"type":"FOO","events":[{"introduced":"0"}]}`), `affected[0].ranges[0].type: unknown range type "FOO"`},
		{"lower-case range type", withRange(`{"type":"semver","events":[{"introduced":"0"}]}`), `unknown range type "semver"`},
		{"no range type", withRange(`{"events":[{"introduced":"0"}]}`), "affected[0].ranges[0].type: missing"},
		{"no events", withRange(`{"type":"SEMVER","events":[]}`), "affected[0].ranges[0].events: no events"},
		{"events an object", withRange(`{"type":"SEMVER","events":{"introduced":"0"}}`), "events: want an array, got an object"},
		{"event a string", withRange(`{"type":"SEMVER","events":["0"]}`), "affected[0].ranges[0].events[0]: not an object but a string"},
		{"event an array", withRange(`{"type":"ECOSYSTEM","events":[{"introduced":"0"},[]]}`), "events[1]: not an object but an array"},
		{"event empty", withRange(`{"type":"SEMVER","events":[{}]}`), "events[0]: an event needs one of introduced"},
		{"event unknown key", withRange(`{"type":"SEMVER","events":[{"introduce":"0"}]}`), "events[0]: an event needs one of"},
		{"event two keys", withRange(`{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}`), "events[0]: an event has one of introduced, fixed, last_affected, limit, not 2"},
		{"event a number", withRange(`{"type":"SEMVER","events":[{"introduced":0}]}`), "events[0].introduced: want a string, got a number"},
		{"event empty string", withRange(`{"type":"SEMVER","events":[{"introduced":""}]}`), "events[0].introduced: empty"},
		{"GIT range still checked", withRange(`{"type":"GIT","events":["x"]}`), "events[0]: not an object"},
		{"database_specific an array", `{` + ok + `,"database_specific":[]}`, "database_specific: want an object"},
		{"deep nesting", `{` + ok + `,"database_specific":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "nested deeper than 64 levels"},
		{"deep nesting, not JSON", strings.Repeat("[", 1<<20), "nested deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseOSV([]byte(tt.record))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseOSV(%s) = %v, %v, want error %q", tt.name, a, err, tt.wantErr)
			}
			var re *RecordError
			if !errors.Is(err, ErrInvalidRecord) || !errors.As(err, &re) {
				t.Errorf("ParseOSV(%s) error %v is not a *RecordError matching ErrInvalidRecord", tt.name, err)
			}
		})
	}
}

func TestParseOSVHuge(t *testing.T) {
	b := editRecord(t, "Go/GO-2020-0015.json", map[string]any{"details": strings.Repeat("x", MaxRecordSize)})
	_, err := ParseOSV(b)
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "over the 4 MiB cap") {
		t.Fatalf("ParseOSV(%d bytes) error = %v, want ErrTooLarge", len(b), err)
	}
	// Just under the cap is fine.
	b = editRecord(t, "Go/GO-2020-0015.json", map[string]any{"details": strings.Repeat("x", MaxRecordSize-3000)})
	if _, err := ParseOSV(b); err != nil {
		t.Fatalf("ParseOSV(%d bytes): %v", len(b), err)
	}
}
