package egress

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

var prefixSeeds = []string{
	"https://mail.example.net/v3/",
	"http://127.0.0.1:9000/hook/",
	"HTTPS://Mail.Example.NET:443/V3/",
	"https://[2001:db8::1]:8443/a%20b/",
	"https://xn--bcher-kva.example",
	"https://h.example/%7Euser/",
	"https://*.example.com/",
	"https://user:pw@h.example/",
	"https://h.example/v3/%2e%2e/",
	"https://h.example:0443/",
	"https://[::ffff:127.0.0.1]/",
	"https://127.1/",
	"https://bücher.example/",
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range prefixSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return // refusing input is fine; panics are not
		}
		switch {
		case p.Raw != s:
			t.Fatalf("ParsePrefix(%q).Raw = %q", s, p.Raw)
		case p.Scheme != "https" && p.Scheme != "http":
			t.Fatalf("ParsePrefix(%q).Scheme = %q", s, p.Scheme)
		case p.Host == "" || p.Host != strings.ToLower(p.Host):
			t.Fatalf("ParsePrefix(%q).Host = %q, want non-empty lower case", s, p.Host)
		case !validPort(p.Port):
			t.Fatalf("ParsePrefix(%q).Port = %q", s, p.Port)
		case !strings.HasPrefix(p.Path, "/") || !strings.HasSuffix(p.Path, "/"):
			t.Fatalf("ParsePrefix(%q).Path = %q, want it to start and end with /", s, p.Path)
		}
		q, err := ParsePrefix(p.String())
		if err != nil {
			t.Fatalf("ParsePrefix(%q) = %+v, but its String %q does not parse: %v", s, p, p.String(), err)
		}
		q.Raw = p.Raw
		if q != p {
			t.Fatalf("ParsePrefix(%q) = %+v, want %+v", p.String(), q, p)
		}
		u, err := url.Parse(p.String())
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", p.String(), err)
		}
		if !p.Allows(u) {
			t.Fatalf("ParsePrefix(%q).Allows(%q) = false, want true", s, p.String())
		}
	})
}

// FuzzAllows checks that whatever a prefix allows stays under its path
// however a server reads the path: decoded, with backslashes as slashes,
// with ";params" cut from segments, decoded twice, and dot-segments
// resolved after each.
func FuzzAllows(f *testing.F) {
	targets := []string{
		"https://mail.example.net/v3/send",
		"https://mail.example.net/v3/../admin",
		"https://mail.example.net/v3/%2e%2e/admin",
		"https://mail.example.net/v3/..%2fadmin",
		"https://mail.example.net/v3/..;/admin",
		"https://mail.example.net/v3/%252e%252e/admin",
		"https://mail.example.net/v3/a%5c..%5c..%5cadmin",
		"http://127.0.0.1:9000/hook/x?y=../z",
		"https://user@mail.example.net/v3/x",
		"https://mail.example.net:443/v3//x",
	}
	for i, p := range prefixSeeds {
		f.Add(p, targets[i%len(targets)])
	}
	f.Fuzz(func(t *testing.T, prefix, raw string) {
		p, err := ParsePrefix(prefix)
		if err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || !p.Allows(u) {
			return
		}
		if u.User != nil || u.Opaque != "" || !strings.EqualFold(u.Scheme, p.Scheme) {
			t.Fatalf("Prefix(%q).Allows(%q): user, opaque or scheme let through", prefix, raw)
		}
		if host, _, err := canonicalHost(strings.ToLower(u.Scheme), u.Host); err != nil || host != p.Host {
			t.Fatalf("Prefix(%q).Allows(%q): host %q let through", prefix, raw, u.Host)
		}
		base, err := url.PathUnescape(p.Path)
		if err != nil {
			t.Fatalf("prefix path %q does not unescape: %v", p.Path, err)
		}
		escaped := u.EscapedPath()
		if escaped == "" {
			escaped = "/"
		}
		once, err := url.PathUnescape(escaped)
		if err != nil {
			t.Fatalf("Prefix(%q).Allows(%q): path %q does not unescape", prefix, raw, escaped)
		}
		twice, err := url.PathUnescape(once)
		if err != nil {
			twice = once
		}
		readings := []struct{ path, base string }{
			{once, base},
			{twice, base},
			{strings.ReplaceAll(once, `\`, "/"), base},
			{cutParams(once), cutParams(base)},
		}
		for _, r := range readings {
			if !under(r.path, r.base) {
				t.Fatalf("Prefix(%q).Allows(%q), but a server may read the path as %q, outside %q", prefix, raw, path.Clean(r.path), r.base)
			}
		}
	})
}

// under reports whether p, with dot-segments resolved, is base or below it.
// base ends with "/".
func under(p, base string) bool {
	clean := path.Clean(p)
	if clean != "/" {
		clean += "/"
	}
	return strings.HasPrefix(clean, base) || clean == base
}

// cutParams removes ";params" from each segment, as Tomcat does.
func cutParams(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return strings.Join(segs, "/")
}
