package vulndb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	msemver "github.com/Masterminds/semver/v3"
	"golang.org/x/mod/semver"
)

// The ecosystems whose versions this package can order, named as OSV names
// them.
const (
	Go   = "Go"
	NPM  = "npm"
	PyPI = "PyPI"
)

// errVersion reports a version string a scheme cannot read.
var errVersion = errors.New("not a valid version")

// version is one parsed version. compare takes a version parsed by the same
// scheme and returns -1, 0 or +1; key is a canonical form: two versions
// compare equal exactly when their keys are equal.
type version interface {
	compare(o version) int
	key() string
}

// scheme is what matching needs from an ecosystem: how to read its versions
// and how to write a package name so that equal names are equal strings.
type scheme interface {
	parse(s string) (version, error)
	name(pkg string) string
}

// canonicalEcosystem returns the OSV spelling of the ecosystems this package
// knows ("pypi" -> "PyPI"); others are returned as they are.
func canonicalEcosystem(eco string) string {
	for _, known := range [...]string{Go, NPM, PyPI} {
		if strings.EqualFold(eco, known) {
			return known
		}
	}
	return eco
}

// schemeFor returns the ordering of an ecosystem's ECOSYSTEM ranges, or nil
// when this package cannot order its versions. eco is canonical.
func schemeFor(eco string) scheme {
	switch eco {
	case Go:
		return goScheme{}
	case NPM:
		return npmScheme{}
	case PyPI:
		return pypiScheme{}
	}
	return nil
}

// rangeScheme returns the ordering of a range of type typ in ecosystem eco,
// and whether it is plain SemVer rather than the ecosystem's own ordering.
// It returns nil for ranges that cannot be ordered.
func rangeScheme(eco, typ string) (s scheme, generic bool) {
	switch typ {
	case "ECOSYSTEM":
		return schemeFor(eco), false
	case "SEMVER":
		switch eco {
		case Go, NPM: // their own ordering is SemVer 2.0
			return schemeFor(eco), false
		}
		return semverScheme{}, true
	}
	return nil, false
}

// semverVersion is a SemVer 2.0 version in golang.org/x/mod/semver's
// canonical form ("v1.2.3-pre"; build metadata dropped, as SemVer orders it).
type semverVersion string

func (v semverVersion) compare(o version) int {
	return semver.Compare(string(v), string(o.(semverVersion)))
}

func (v semverVersion) key() string { return string(v) }

// parseSemver reads a SemVer version with or without the leading "v".
func parseSemver(s string) (version, error) {
	v := s
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return nil, fmt.Errorf("%q: %w", s, errVersion)
	}
	return semverVersion(semver.Canonical(v)), nil
}

// semverScheme orders SEMVER ranges outside the Go and npm ecosystems.
type semverScheme struct{}

func (semverScheme) parse(s string) (version, error) { return parseSemver(s) }
func (semverScheme) name(pkg string) string          { return pkg }

// goScheme orders Go module versions: SemVer, which puts pseudo-versions
// where they belong and ignores "+incompatible". Toolchain versions ("go1.22.1",
// "go1.22rc1") are read in the form the Go vulnerability database gives the
// stdlib and toolchain packages ("1.22.1", "1.22.0-rc.1").
type goScheme struct{}

func (goScheme) parse(s string) (version, error) {
	if strings.HasPrefix(s, "go") {
		v, ok := goToolchainSemver(s)
		if !ok {
			return nil, fmt.Errorf("%q: %w", s, errVersion)
		}
		return semverVersion(v), nil
	}
	return parseSemver(s)
}

func (goScheme) name(pkg string) string { return pkg }

// goToolchainSemver converts a Go toolchain version such as "go1.26.8",
// "go1.21", "go1.22rc1" or "go1.9beta2" to SemVer ("v1.26.8", "v1.21.0",
// "v1.22.0-rc.1", "v1.9.0-beta.2"). Anything after a space (the
// " X:experiment" suffix of runtime.Version) is ignored.
func goToolchainSemver(s string) (string, bool) {
	s, ok := strings.CutPrefix(s, "go")
	if !ok {
		return "", false
	}
	s, _, _ = strings.Cut(s, " ")
	var nums []string
	pre := ""
	for len(nums) < 3 {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == 0 || (n > 1 && s[0] == '0') {
			return "", false
		}
		nums = append(nums, s[:n])
		s = s[n:]
		if s == "" {
			break
		}
		if s[0] == '.' {
			s = s[1:]
			continue
		}
		pre = s
		s = ""
		break
	}
	if s != "" || len(nums) < 1 {
		return "", false
	}
	for len(nums) < 3 {
		nums = append(nums, "0")
	}
	v := "v" + strings.Join(nums, ".")
	if pre != "" {
		word := strings.TrimRight(pre, "0123456789")
		n := pre[len(word):]
		switch word {
		case "alpha", "beta", "rc":
		default:
			return "", false
		}
		if n == "" || (len(n) > 1 && n[0] == '0') {
			return "", false
		}
		v += "-" + word + "." + n
	}
	if !semver.IsValid(v) {
		return "", false
	}
	return v, true
}

// npmScheme orders npm versions as node-semver does: SemVer 2.0, with
// pre-releases before their release and build metadata ignored.
type npmScheme struct{}

type npmVersion struct{ v *msemver.Version }

func (npmScheme) parse(s string) (version, error) {
	v, err := msemver.NewVersion(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, errVersion)
	}
	return npmVersion{v}, nil
}

func (npmScheme) name(pkg string) string { return pkg }

func (v npmVersion) compare(o version) int { return v.v.Compare(o.(npmVersion).v) }

func (v npmVersion) key() string {
	k := strconv.FormatUint(v.v.Major(), 10) + "." + strconv.FormatUint(v.v.Minor(), 10) + "." + strconv.FormatUint(v.v.Patch(), 10)
	if p := v.v.Prerelease(); p != "" {
		k += "-" + p
	}
	return k
}

// pypiScheme orders PyPI versions by PEP 440 and writes names as PEP 503
// does.
type pypiScheme struct{}

func (pypiScheme) parse(s string) (version, error) {
	v, err := parsePEP440(s)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (pypiScheme) name(pkg string) string { return normalizePyPI(pkg) }

// normalizePyPI returns a PyPI project name as PEP 503 compares it: lower
// case, each run of "-", "_" and "." replaced by one "-".
func normalizePyPI(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			sep = true
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		b.WriteByte(c)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}
