package inventory

import (
	"net/url"
	"strings"
)

// purl is a parsed package URL (github.com/package-url/purl-spec), without
// its qualifiers and subpath, which name nothing OSV matches on.
type purl struct {
	typ       string // lower case: "golang", "npm", ...
	namespace string // decoded segments joined by "/"
	name      string // decoded
	version   string // decoded
}

// parsePURL parses s, "pkg:type/namespace/name@version?qualifiers#subpath".
func parsePURL(s string) (purl, bool) {
	rest, ok := cutPrefixFold(s, "pkg:")
	if !ok {
		return purl{}, false
	}
	rest = strings.TrimLeft(rest, "/")
	if i := strings.LastIndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	var p purl
	if i := strings.LastIndexByte(rest, '@'); i > strings.LastIndexByte(rest, '/') {
		v, err := url.PathUnescape(rest[i+1:])
		if err != nil {
			return purl{}, false
		}
		p.version = v
		rest = rest[:i]
	}
	typ, path, ok := strings.Cut(rest, "/")
	if !ok || typ == "" {
		return purl{}, false
	}
	for _, c := range typ {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '+' || c == '-') {
			return purl{}, false
		}
	}
	p.typ = strings.ToLower(typ)
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		d, err := url.PathUnescape(seg)
		if err != nil || d == "" {
			return purl{}, false
		}
		segs[i] = d
	}
	p.name = segs[len(segs)-1]
	p.namespace = strings.Join(segs[:len(segs)-1], "/")
	return p, true
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// ecosystemOf returns the OSV ecosystem of a purl type, or "".
func ecosystemOf(typ string) string {
	switch typ {
	case "golang":
		return "Go"
	case "npm":
		return "npm"
	case "pypi":
		return "PyPI"
	case "cargo":
		return "crates.io"
	case "maven":
		return "Maven"
	case "gem":
		return "RubyGems"
	case "nuget":
		return "NuGet"
	case "composer":
		return "Packagist"
	case "hex":
		return "Hex"
	case "pub":
		return "Pub"
	}
	return ""
}

// purlTypeOf returns the purl type of an OSV ecosystem, or "".
func purlTypeOf(ecosystem string) string {
	switch ecosystem {
	case "Go":
		return "golang"
	case "npm":
		return "npm"
	case "PyPI":
		return "pypi"
	case "crates.io":
		return "cargo"
	case "Maven":
		return "maven"
	case "RubyGems":
		return "gem"
	case "NuGet":
		return "nuget"
	case "Packagist":
		return "composer"
	case "Hex":
		return "hex"
	case "Pub":
		return "pub"
	}
	return ""
}

// component returns the component a purl names, if its type is one OSV
// knows.
func (p purl) component() (ecosystem, name, version string, ok bool) {
	eco := ecosystemOf(p.typ)
	if eco == "" {
		return "", "", "", false
	}
	name, version = p.name, p.version
	switch eco {
	case "Go":
		if p.namespace == "" && name == "stdlib" {
			version = strings.TrimPrefix(strings.TrimPrefix(version, "go"), "v")
			break
		}
		if p.namespace != "" {
			name = p.namespace + "/" + name
		}
		if version != "" && '0' <= version[0] && version[0] <= '9' {
			version = "v" + version
		}
	case "npm":
		if ns := p.namespace; ns != "" {
			if !strings.HasPrefix(ns, "@") {
				ns = "@" + ns
			}
			name = ns + "/" + name
		}
	case "Maven":
		if p.namespace != "" {
			name = p.namespace + ":" + name
		}
	case "Packagist":
		if p.namespace != "" {
			name = p.namespace + "/" + name
		}
	}
	return eco, name, version, true
}

// purlOf returns the purl of c, or "" when its ecosystem has no purl type.
func purlOf(c Component) string {
	typ := purlTypeOf(c.Ecosystem)
	if typ == "" || c.Name == "" {
		return ""
	}
	// Names and versions that a purl would read back differently have none.
	switch c.Ecosystem {
	case "Go":
		v := c.Version
		if c.Name == "stdlib" && (strings.HasPrefix(v, "v") || strings.HasPrefix(v, "go")) ||
			c.Name != "stdlib" && v != "" && '0' <= v[0] && v[0] <= '9' {
			return ""
		}
	case "npm":
		if strings.Contains(c.Name, "/") && (!strings.HasPrefix(c.Name, "@") || strings.Count(c.Name, "/") > 1) {
			return ""
		}
	}
	var segs []string
	switch c.Ecosystem {
	case "Go", "npm", "Packagist":
		segs = strings.Split(c.Name, "/")
	case "Maven":
		if g, a, ok := strings.Cut(c.Name, ":"); ok {
			segs = []string{g, a}
		} else {
			segs = []string{c.Name}
		}
	default:
		segs = []string{c.Name}
	}
	var b strings.Builder
	b.WriteString("pkg:")
	b.WriteString(typ)
	for _, s := range segs {
		if s == "" {
			return "" // a name purl cannot carry
		}
		b.WriteByte('/')
		b.WriteString(escapePURL(s))
	}
	if c.Version != "" {
		b.WriteByte('@')
		b.WriteString(escapePURL(c.Version))
	}
	return b.String()
}

// escapePURL percent-encodes every byte of s but the unreserved ones.
func escapePURL(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
