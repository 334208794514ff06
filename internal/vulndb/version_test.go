package vulndb

import (
	"testing"
)

// checkOrder checks that each group of ascending holds versions equal to
// each other and greater than every version in an earlier group.
func checkOrder(t *testing.T, s scheme, ascending [][]string) {
	t.Helper()
	type parsed struct {
		raw   string
		group int
		v     version
	}
	var all []parsed
	for g, group := range ascending {
		for _, raw := range group {
			v, err := s.parse(raw)
			if err != nil {
				t.Errorf("parse(%q): %v", raw, err)
				continue
			}
			all = append(all, parsed{raw, g, v})
		}
	}
	for _, a := range all {
		for _, b := range all {
			want := 0
			switch {
			case a.group < b.group:
				want = -1
			case a.group > b.group:
				want = 1
			}
			if got := a.v.compare(b.v); got != want {
				t.Errorf("compare(%q, %q) = %d, want %d", a.raw, b.raw, got, want)
			}
			if eq := a.v.key() == b.v.key(); eq != (want == 0) {
				t.Errorf("key(%q) = %q, key(%q) = %q: equal %v, want %v", a.raw, a.v.key(), b.raw, b.v.key(), eq, want == 0)
			}
		}
	}
}

func checkRefuses(t *testing.T, s scheme, bad []string) {
	t.Helper()
	for _, raw := range bad {
		if v, err := s.parse(raw); err == nil {
			t.Errorf("parse(%q) = %q, want an error", raw, v.key())
		}
	}
}

func TestGoOrder(t *testing.T) {
	checkOrder(t, goScheme{}, [][]string{
		{"0.0.0-20150717181359-44718f8a89b0"},
		{"v0.0.0-20200220183623-bac4c82f6975", "0.0.0-20200220183623-bac4c82f6975"},
		{"0.1.0", "v0.1.0", "v0.1"},
		{"0.3.7"},
		{"v0.3.8-0.20220101000000-abcdefabcdef"}, // pseudo-version after v0.3.7
		{"0.3.8"},
		{"1.3.0"},
		{"1.3.1-0.20190301021747-ccb9e902956d"},
		{"1.3.1"},
		{"v2.0.0+incompatible", "2.0.0", "v2.0.0"},
		{"v3.2.0+incompatible"},
		{"4.0.0-preview1"},
		{"4.0.0"},
		{"5.0.0-rc.1"},
		{"5.0.0"},
	})
	// Toolchain versions, in the Go database's form and as toolchains write them.
	checkOrder(t, goScheme{}, [][]string{
		{"1.20.7"},
		{"1.21.0-0"},
		{"go1.21rc1", "1.21.0-rc.1"},
		{"go1.21rc3"},
		{"1.21.0-rc.4", "go1.21rc4"},
		{"go1.21.0", "go1.21", "1.21.0"},
		{"go1.22.1", "go1.22.1 X:nocoverageredesign", "1.22.1"},
		{"go1.26.8", "v1.26.8"},
	})
	checkRefuses(t, goScheme{}, []string{"", "v", "1.2.3.4", "01.2.3", "1.2.3-", "latest", "(devel)", "go", "go1.", "go1.2.3.4", "go1.22rc", "go1.22gamma1", "go1.02", "go1.22rc01", "devel go1.23-abc"})
}

func TestGoToolchainSemver(t *testing.T) {
	tests := []struct{ in, want string }{
		{"go1", "v1.0.0"},
		{"go1.20", "v1.20.0"},
		{"go1.26.8", "v1.26.8"},
		{"go1.22rc1", "v1.22.0-rc.1"},
		{"go1.9beta2", "v1.9.0-beta.2"},
		{"go1.18alpha1", "v1.18.0-alpha.1"},
		{"go1.9.2rc2", "v1.9.2-rc.2"},
		{"go1.22.1 X:nocoverageredesign", "v1.22.1"},
		{"1.22.1", ""},
		{"go1.22.1-rc.1", ""},
		{"go1.22.", ""},
	}
	for _, tt := range tests {
		got, ok := goToolchainSemver(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("goToolchainSemver(%q) = %q, %v, want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestNPMOrder(t *testing.T) {
	checkOrder(t, npmScheme{}, [][]string{
		{"0.0.1"},
		{"1.0", "1.0.0"}, // "1.0" is 1.0.0; the node-fetch record writes it so
		{"1.0.1-alpha"},
		// The SemVer 2.0 specification's own example (section 11).
		{"2.0.0-alpha"},
		{"2.0.0-alpha.1"},
		{"2.0.0-alpha.beta"},
		{"2.0.0-beta"},
		{"2.0.0-beta.2"},
		{"2.0.0-beta.11"},
		{"2.0.0-rc.1"},
		{"2.0.0", "v2.0.0", "2.0.0+build.5"},
		{"3.0.0-beta.1"},
		{"3.0.0-beta.9"},
		{"4.17.12"},
		{"4.17.21"},
		{"5.0.0-alpha.1"},
		{"5.0.0-beta.3"},
	})
	checkRefuses(t, npmScheme{}, []string{"", "latest", "1.2.3.4", "1.2.3-", "1.2.3-01", "^1.2.3", "1.x"})
}

func TestPEP440Order(t *testing.T) {
	checkOrder(t, pypiScheme{}, [][]string{
		{"0"},
		{"0.9"},
		// PEP 440's own example of a sorted list ("Summary of permitted
		// suffixes and relative ordering"), with local versions added.
		{"1.0.dev456", "1.0-dev456", "1.0dev456", "1.0_dev_456"},
		{"1.0a1", "1.0alpha1", "1.0-a1", "1.0.a.1", "1.0A1"},
		{"1.0a2.dev456"},
		{"1.0a12.dev456"},
		{"1.0a12"},
		{"1.0b1.dev456"},
		{"1.0b2", "1.0beta2"},
		{"1.0b2.post345.dev456"},
		{"1.0b2.post345", "1.0b2-345", "1.0b2post345", "1.0b2.rev345", "1.0b2-r345"},
		{"1.0rc1.dev456", "1.0c1.dev456"},
		{"1.0rc1", "1.0c1", "1.0pre1", "1.0preview1", "1.0-rc-1"},
		{"1.0", "1.0.0", "1.0.0.0", "v1.0", " 1.0\n", "01.00"},
		{"1.0+abc.5", "1.0+ABC-5", "1.0+abc_05"},
		{"1.0+abc.7"},
		{"1.0+5"},
		{"1.0+5.abc"},
		{"1.0.post456.dev34"},
		{"1.0.post456"},
		{"1.0.1"},
		{"1.0.15"},
		{"1.1.dev1"},
		{"2.31.0"},
		{"2.32.0rc1"},
		{"2.32.0"},
		{"2004.1"},
		{"1!0.1", "1!0.1.0"},
		{"1!1.0"},
	})
	// Implicit numbers and separators.
	checkOrder(t, pypiScheme{}, [][]string{
		{"1.0a", "1.0a0", "1.0-a-0", "1.0.alpha.0", "1.0a-"},
		{"1.0.post", "1.0.post0", "1.0post-", "1.0-r"},
	})
	checkRefuses(t, pypiScheme{}, []string{
		"", "v", "1.0+", "1.0+a..b", "1.0+a.", "1..0", "1.0-", "1.0x", "a1.0", "1.0 beta",
		"1.0.post1.post2", "1.0dev1a1", "1.0+ä", "1!", "!1", "1.0_", "1.0a1b2",
		"99999999999999999999", "1.0+99999999999999999999", "1!99999999999999999999",
	})
}

func TestNormalizePyPI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Jinja2", "jinja2"},
		{"PyYAML", "pyyaml"},
		{"zope.interface", "zope-interface"},
		{"Foo__Bar-.baz", "foo-bar-baz"},
		{"-x-", "-x-"},
		{"requests", "requests"},
	}
	for _, tt := range tests {
		if got := normalizePyPI(tt.in); got != tt.want {
			t.Errorf("normalizePyPI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCanonicalEcosystem(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Go", "Go"}, {"go", "Go"}, {"NPM", "npm"}, {"pypi", "PyPI"}, {"crates.io", "crates.io"}, {"Debian:11", "Debian:11"},
	}
	for _, tt := range tests {
		if got := canonicalEcosystem(tt.in); got != tt.want {
			t.Errorf("canonicalEcosystem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
