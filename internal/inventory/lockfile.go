package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ParseLockFile reads the components a lock file pins. Which format it is
// comes from the base name:
//
//   - package-lock.json, npm-shrinkwrap.json: lockfileVersion 1 (the nested
//     "dependencies"), 2 and 3 (the "packages" keyed by node_modules paths,
//     @scope/name included); npm aliases are reported under the real name.
//   - Cargo.lock: packages with a source (local crates have none).
//   - poetry.lock: packages but directory dependencies.
//   - requirements.txt (and requirements*.txt): only `name==version` (or
//     ===) lines count; comments, --hash options, environment markers and
//     line continuations are handled; unpinned, URL and option lines are
//     ignored.
//   - go.sum: each module version once, its "/go.mod" line folded in.
//
// Each component's Source is "lockfile:" and name. The result is sorted and
// has no duplicates. An unknown name is refused with an *Error wrapping
// ErrUnsupported; input over the limits, or malformed JSON, TOML or go.sum
// lines, with one wrapping ErrTooLarge or ErrMalformed.
func ParseLockFile(name string, b []byte) ([]Component, error) {
	base := path.Base(strings.ReplaceAll(name, `\`, "/"))
	var parse func(*collector, []byte) error
	switch {
	case base == "package-lock.json" || base == "npm-shrinkwrap.json":
		parse = parseNPM
	case base == "Cargo.lock":
		parse = parseCargo
	case base == "poetry.lock":
		parse = parsePoetry
	case base == "go.sum":
		parse = parseGoSum
	case strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt"):
		parse = parseRequirements
	default:
		return nil, unsupported(name, "not a lock file this package reads "+
			"(package-lock.json, npm-shrinkwrap.json, Cargo.lock, poetry.lock, requirements.txt, go.sum)")
	}
	if err := checkSize(name, b); err != nil {
		return nil, err
	}
	c := &collector{file: name, source: "lockfile:" + name}
	if err := parse(c, b); err != nil {
		return nil, err
	}
	return normalize(c.out), nil
}

// parseNPM reads package-lock.json. Version 2 and 3 locks list every
// installed package under "packages"; version 1 nests "dependencies".
// Version 2 has both, and "packages" wins.
func parseNPM(c *collector, b []byte) error {
	r := newJSONReader(c.file, b)
	pkgs := &collector{file: c.file, source: c.source}
	deps := &collector{file: c.file, source: c.source}
	var lockVersion string
	hasPackages := false
	err := r.object("document", func(key string) error {
		var err error
		switch key {
		case "lockfileVersion":
			lockVersion, err = r.scalar(key)
		case "packages":
			hasPackages = true
			err = r.object(key, func(k string) error { return npmPackage(r, pkgs, k) })
		case "dependencies":
			err = npmDependencies(r, deps, key)
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := r.end(); err != nil {
		return err
	}
	switch lockVersion {
	case "1", "2", "3":
	case "":
		return malformed(c.file, 1, "no lockfileVersion: not an npm lock file")
	default:
		return unsupported(c.file, "lockfileVersion %s (want 1, 2 or 3)", lockVersion)
	}
	if hasPackages {
		*c = *pkgs
	} else {
		*c = *deps
	}
	return nil
}

// npmPackage reads one entry of "packages", keyed by its folder:
// "node_modules/@scope/name", "node_modules/a/node_modules/b". The root
// ("") and workspace folders are the project's own code; links point at
// them.
func npmPackage(r *jsonReader, c *collector, key string) error {
	p := field("packages", key)
	var name, version string
	var link bool
	err := r.object(p, func(k string) error {
		var err error
		switch k {
		case "name":
			name, err = r.str(field(p, k))
		case "version":
			version, err = r.str(field(p, k))
		case "link":
			link, err = r.boolean(field(p, k))
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	const nm = "node_modules/"
	i := strings.LastIndex(key, nm)
	if link || i < 0 {
		return nil
	}
	if name == "" { // set only when it differs from the folder: an alias
		name = key[i+len(nm):]
	}
	return addNPM(c, name, version)
}

// npmDependencies reads a version 1 "dependencies" object and the ones
// nested in it. The reader's nesting limit bounds the recursion.
func npmDependencies(r *jsonReader, c *collector, path string) error {
	return r.object(path, func(name string) error {
		p := field(path, name)
		var version string
		err := r.object(p, func(k string) error {
			var err error
			switch k {
			case "version":
				version, err = r.str(field(p, k))
			case "dependencies":
				err = npmDependencies(r, c, field(p, k))
			default:
				err = r.skip()
			}
			return err
		})
		if err != nil {
			return err
		}
		// An alias is written "npm:real-name@version".
		if rest, ok := strings.CutPrefix(version, "npm:"); ok {
			if i := strings.LastIndexByte(rest, '@'); i > 0 {
				name, version = rest[:i], rest[i+1:]
			}
		}
		return addNPM(c, name, version)
	})
}

// addNPM adds an npm package unless it has no version or is local. A
// registry version must be one node-semver reads strictly (a lock file npm
// wrote holds nothing else): a forged "1.0" or "01.2.3" would otherwise
// escape the advisories' ranges. Dependencies from git or a URL are kept
// with their spec: they have no registry version to check.
func addNPM(c *collector, name, version string) error {
	if name == "" || version == "" || strings.HasPrefix(version, "file:") || strings.HasPrefix(version, "link:") {
		return nil
	}
	if !npmNonRegistry(version) {
		v, ok := NPMVersion(version)
		if !ok {
			return malformed(c.file, 0, "%s: version %.60q is not one npm installs (node-semver reads none but x.y.z versions)", name, version)
		}
		version = v
	}
	return c.add("npm", name, version)
}

// parseRequirements reads a pip requirements file.
func parseRequirements(c *collector, b []byte) error {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return malformed(c.file, lineAt(b, int64(i)), "NUL byte: not a text file")
	}
	var logical strings.Builder
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		comment := strings.HasPrefix(strings.TrimSpace(line), "#")
		if cont, ok := strings.CutSuffix(line, `\`); ok && !comment {
			logical.WriteString(cont)
			continue
		}
		logical.WriteString(line)
		err := requirement(c, logical.String())
		logical.Reset()
		if err != nil {
			return err
		}
	}
	return requirement(c, logical.String())
}

// requirement adds the package of one logical line if it is pinned.
func requirement(c *collector, s string) error {
	// A comment starts at a '#' at the start or after white space.
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			s = s[:i]
			break
		}
	}
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '-' { // -r, -c, -e, --index-url, ...
		return nil
	}
	// Options such as --hash follow the requirement after white space.
	for i := 1; i < len(s); i++ {
		if s[i] == '-' && (s[i-1] == ' ' || s[i-1] == '\t') {
			s = s[:i]
			break
		}
	}
	s, _, _ = strings.Cut(s, ";") // an environment marker
	s = strings.TrimSpace(s)

	i := 0
	for i < len(s) && isNameByte(s[i]) {
		i++
	}
	name, rest := s[:i], strings.TrimSpace(s[i:])
	if name == "" || !isAlnum(name[0]) {
		return nil
	}
	if strings.HasPrefix(rest, "[") { // extras
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return nil
		}
		rest = strings.TrimSpace(rest[j+1:])
	}
	v, ok := strings.CutPrefix(rest, "===")
	if !ok {
		if v, ok = strings.CutPrefix(rest, "=="); !ok {
			return nil
		}
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	for j := 0; j < len(v); j++ {
		if !isAlnum(v[j]) && !strings.ContainsRune(".+!_-", rune(v[j])) {
			return nil // a wildcard, a second specifier, a URL: not pinned
		}
	}
	return c.add("PyPI", name, v)
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isNameByte(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

// parseGoSum reads go.sum: lines of "module version hash", where a version
// ending in "/go.mod" hashes only the module's go.mod file.
func parseGoSum(c *collector, b []byte) error {
	n := 0
	for line := range strings.Lines(string(b)) {
		n++
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return malformed(c.file, n, "want \"module version hash\", found %d fields", len(f))
		}
		version := strings.TrimSuffix(f[1], "/go.mod")
		if !strings.HasPrefix(version, "v") {
			return malformed(c.file, n, "version %q does not start with v", version)
		}
		if err := c.add("Go", f[0], version); err != nil {
			return err
		}
	}
	return nil
}

// TOML costs: github.com/BurntSushi/toml builds a tree of the whole
// document before it fills in a struct, at some hundreds of bytes for each
// key, table or value, and more for deep nesting. So a TOML lock file is
// measured first.
const (
	// maxTOMLItems bounds the bytes that start a key, table or value
	// ('=', '[', '{', ','), counted everywhere, strings included. A large
	// real poetry.lock has a few tens of thousands; at the limit a hostile file
	// costs about 200 MB of allocation and a second of parsing.
	maxTOMLItems = 250_000
	// maxTOMLDepth bounds the nesting of arrays and tables.
	maxTOMLDepth = 32
)

// checkTOML refuses a TOML document that would cost too much to parse.
func checkTOML(file string, b []byte) error {
	items := 0
	for _, c := range b {
		switch c {
		case '=', '[', '{', ',':
			items++
		}
	}
	if items > maxTOMLItems {
		return tooLarge(file, 0, "more than %d TOML keys, tables and values", maxTOMLItems)
	}
	if line, ok := tomlDepthOK(b); !ok {
		return tooLarge(file, line, "TOML nested deeper than %d", maxTOMLDepth)
	}
	return nil
}

// tomlDepthOK reports whether no array or inline table nests deeper than
// maxTOMLDepth, skipping strings and comments; if one does, it returns the
// line.
func tomlDepthOK(b []byte) (int, bool) {
	depth, line := 0, 1
	for i := 0; i < len(b); i++ {
		switch q := b[i]; q {
		case '\n':
			line++
		case '#':
			for i+1 < len(b) && b[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			if i+2 < len(b) && b[i+1] == q && b[i+2] == q { // multi-line
				j := i + 3
				for j < len(b) {
					if q == '"' && b[j] == '\\' {
						j += 2
						continue
					}
					if b[j] == '\n' {
						line++
					}
					if b[j] == q && j+2 < len(b) && b[j+1] == q && b[j+2] == q {
						j += 3
						for k := 0; k < 2 && j < len(b) && b[j] == q; k++ {
							j++ // up to two quotes may end the content
						}
						break
					}
					j++
				}
				i = j - 1
				continue
			}
			j := i + 1
			for j < len(b) && b[j] != q && b[j] != '\n' {
				if q == '"' && b[j] == '\\' {
					j++
				}
				j++
			}
			if j < len(b) && b[j] == '\n' {
				j-- // let the loop count the line
			}
			i = j
		case '[', '{':
			depth++
			if depth > maxTOMLDepth {
				return line, false
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, true
}

// decodeTOML measures and decodes a TOML lock file into v.
func decodeTOML(file string, b []byte, v any) error {
	if err := checkTOML(file, b); err != nil {
		return err
	}
	if _, err := toml.Decode(string(b), v); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.LastKey != "" {
				msg = pe.LastKey + ": " + msg
			}
			return &Error{File: file, Line: pe.Position.Line, Err: fmt.Errorf("%w: %s", ErrMalformed, msg)}
		}
		// Type errors are plain: "toml: line 5 (last key "a.b"): msg".
		var line int
		var key string
		if _, serr := fmt.Sscanf(err.Error(), "toml: line %d (last key %q): ", &line, &key); serr == nil {
			_, msg, _ := strings.Cut(err.Error(), "): ")
			return &Error{File: file, Line: line, Err: fmt.Errorf("%w: %s: %s", ErrMalformed, key, msg)}
		}
		return &Error{File: file, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	return nil
}

// parseCargo reads Cargo.lock (versions 1 to 4 share [[package]]).
func parseCargo(c *collector, b []byte) error {
	var lock struct {
		Package []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
			Source  string `toml:"source"`
		} `toml:"package"`
	}
	if err := decodeTOML(c.file, b, &lock); err != nil {
		return err
	}
	for i, p := range lock.Package {
		if p.Name == "" || p.Version == "" {
			return malformed(c.file, 0, "package[%d]: want a name and a version", i)
		}
		if p.Source == "" { // a crate of this workspace or a path dependency
			continue
		}
		if err := c.add("crates.io", p.Name, p.Version); err != nil {
			return err
		}
	}
	return nil
}

// parsePoetry reads poetry.lock.
func parsePoetry(c *collector, b []byte) error {
	var lock struct {
		Package []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
			Source  struct {
				Type string `toml:"type"`
			} `toml:"source"`
		} `toml:"package"`
	}
	if err := decodeTOML(c.file, b, &lock); err != nil {
		return err
	}
	for i, p := range lock.Package {
		if p.Name == "" || p.Version == "" {
			return malformed(c.file, 0, "package[%d]: want a name and a version", i)
		}
		if p.Source.Type == "directory" { // a local project
			continue
		}
		if err := c.add("PyPI", p.Name, p.Version); err != nil {
			return err
		}
	}
	return nil
}

// npmNonRegistry reports whether a lock file's version is the spec of a
// dependency from outside the registry (git, a tarball URL, GitHub).
func npmNonRegistry(v string) bool {
	for _, p := range []string{"git+", "git:", "git@", "http:", "https:", "github:", "gitlab:", "bitbucket:", "gist:"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// npmVersionRE is node-semver's strict FULL version: an optional "v",
// three numbers without leading zeros, dotted pre-release identifiers
// (numeric ones without leading zeros) and build metadata.
var npmVersionRE = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*))*)?` +
	`(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$`)

// NPMVersion reads v as node-semver's valid() does: at most 256
// characters, main numbers at most 2^53-1; it returns the version without
// its "v".
func NPMVersion(v string) (string, bool) {
	if len(v) > 256 {
		return "", false
	}
	m := npmVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	for _, n := range m[1:4] {
		if x, err := strconv.ParseUint(n, 10, 64); err != nil || x > 1<<53-1 {
			return "", false
		}
	}
	return strings.TrimPrefix(v, "v"), true
}
