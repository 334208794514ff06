package vulndb

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	pep440lib "github.com/aquasecurity/go-pep440-version"
)

func FuzzParseOSV(f *testing.F) {
	for _, path := range recordFiles(f, "") {
		rel, _ := filepath.Rel(osvDir, path)
		f.Add(readTestdata(f, rel))
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"id":"X","modified":"2024-01-01T00:00:00Z"}`,
		`{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"last_affected":"1.0"},{"limit":"*"}]}],"versions":["1.0"]}]}`,
		`{"id":"X","modified":"2024-01-01T00:00:00Z","summary":"` + strings.Repeat("a", 299) + ` \u0085 b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseOSV(b)
		if err != nil {
			return // refusing input is fine; panics and hangs are not
		}
		if err := a.validate(); err != nil {
			t.Fatalf("ParseOSV accepted what validate refuses: %v", err)
		}
		// What ParseOSV accepts, a DB holds, encodes, decodes and matches.
		db := New([]*Advisory{a})
		enc, err := db.Encode()
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode()) of an accepted record: %v", err)
		}
		if enc2, _ := back.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatal("Decode(Encode()) changed the advisory")
		}
		for _, af := range a.Affected {
			db.Match(af.Ecosystem, af.Package, "1.0.0")
			for _, r := range af.Ranges {
				for _, e := range r.Events {
					db.Match(af.Ecosystem, af.Package, e.Introduced+e.Fixed+e.LastAffected+e.Limit)
				}
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	full, err := testdataDB(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	empty, _ := New(nil).Encode()
	one, _ := New([]*Advisory{mustParse(f, readTestdata(f, "PyPI/GHSA-462w-v97r-4m45.json"))}).Encode()
	f.Add(full)
	f.Add(empty)
	f.Add(one)
	f.Add(gz(f, `{"format":"moat-vulndb","version":1,"advisories":[{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"ecosystem":"Go","package":"m","ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}]}`))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, b []byte) {
		db, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := db.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded DB: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode()) of a decoded DB: %v", err)
		}
		if enc2, _ := again.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatal("Decode(Encode()) changed a decoded DB")
		}
		db.Match("Go", "m", "v1.0.0")
		db.Match("PyPI", "jinja2", "2.10")
	})
}

// versionSeeds returns version forms of the tests and the records.
func versionSeeds() []string {
	return []string{
		"0", "1.0.0", "v1.2.3", "0.3.8", "0.0.0-20220906165146-f3363e06e74c", "1.3.1-0.20190301021747-ccb9e902956d",
		"2.0.0+incompatible", "1.21.0-rc.4", "1.23.0-0", "go1.26.8", "go1.22rc1", "go1.9beta2",
		"5.0.0-alpha.1", "3.0.0-beta.9", "1.0", "1.0.0-alpha.beta", "1.0.0-rc.1+build.5",
		"2.32.0rc1", "1!1.0", "1.0.post456.dev34", "1.0+abc.5", "1.0a-", "5.4.dev0", "1.0_post_1", "v1.0-r",
	}
}

// checkScheme checks that s orders what it parses totally and
// consistently: antisymmetric, reflexive, transitive, and equal exactly
// when the keys are.
func checkScheme(t *testing.T, s scheme, a, b, c string) {
	var vs []version
	for _, raw := range []string{a, b, c} {
		if v, err := s.parse(raw); err == nil {
			vs = append(vs, v)
		}
	}
	for _, x := range vs {
		if x.compare(x) != 0 {
			t.Fatalf("compare(%q, itself) != 0", x.key())
		}
		for _, y := range vs {
			xy, yx := x.compare(y), y.compare(x)
			if xy != -yx || xy < -1 || xy > 1 {
				t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", x.key(), y.key(), xy, y.key(), x.key(), yx)
			}
			if (xy == 0) != (x.key() == y.key()) {
				t.Fatalf("compare(%q, %q) = %d with keys equal %v", x.key(), y.key(), xy, x.key() == y.key())
			}
			for _, z := range vs {
				if xy <= 0 && y.compare(z) <= 0 && x.compare(z) > 0 {
					t.Fatalf("%q <= %q <= %q but %q > %q", x.key(), y.key(), z.key(), x.key(), z.key())
				}
			}
		}
	}
}

func addVersionSeeds(f *testing.F) {
	seeds := versionSeeds()
	for i, a := range seeds {
		f.Add(a, seeds[(i+1)%len(seeds)], seeds[(i+7)%len(seeds)])
	}
}

func FuzzOrderGo(f *testing.F) {
	addVersionSeeds(f)
	f.Fuzz(func(t *testing.T, a, b, c string) { checkScheme(t, goScheme{}, a, b, c) })
}

func FuzzOrderNPM(f *testing.F) {
	addVersionSeeds(f)
	f.Fuzz(func(t *testing.T, a, b, c string) { checkScheme(t, npmScheme{}, a, b, c) })
}

// FuzzOrderPyPI also compares this package's PEP 440 ordering with
// github.com/aquasecurity/go-pep440-version's wherever both read the
// versions. (The library is used here only, on versions parsed afresh and
// compared in one goroutine: see the package documentation.)
func FuzzOrderPyPI(f *testing.F) {
	addVersionSeeds(f)
	f.Fuzz(func(t *testing.T, a, b, c string) {
		checkScheme(t, pypiScheme{}, a, b, c)
		ours1, err1 := parsePEP440(a)
		ours2, err2 := parsePEP440(b)
		lib1, err3 := pep440lib.Parse(a)
		lib2, err4 := pep440lib.Parse(b)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return
		}
		if got, want := ours1.compare(ours2), lib1.Compare(lib2); got != want {
			t.Fatalf("compare(%q, %q) = %d, go-pep440-version says %d", a, b, got, want)
		}
	})
}
