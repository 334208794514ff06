package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Prefix is one egress grant, parsed and normalised. A request URL is
// covered by it when their scheme, host and port are equal and the URL's
// path, in canonical form, starts with Path.
//
// The zero value covers nothing.
type Prefix struct {
	Scheme string // "https" or "http"
	Host   string // lower-case DNS name, dotted-decimal IPv4, or canonical IPv6 without brackets
	Port   string // decimal, always set: "443" or "80" when the text names none
	Path   string // canonical escaped path; starts and ends with "/"
	Raw    string // the text ParsePrefix was given, as the manifest wrote it
}

// maxPrefixLen bounds the text of one prefix; a URL longer than this is not
// a grant anyone writes by hand.
const maxPrefixLen = 2048

// ParsePrefix parses one egress grant, like "https://mail.example.net/v3/".
//
// It accepts what the manifest's egress check accepts, less what is
// ambiguous: the scheme is https or http and followed by "//"; the host is
// an ASCII DNS name, a dotted-decimal IPv4 address or a bracketed IPv6
// address (no zone, no IPv4-mapped form); there is no user info, wildcard,
// query or fragment; the port, if any, is 1 to 65535 without leading zeros;
// the path is empty or ends with "/" and holds no dot-segment, empty
// segment, encoded slash, backslash, encoded percent sign, control or
// non-ASCII character. An internationalised host name must be written in
// its punycode form (xn--...).
//
// The result has a lower-case scheme and host, an explicit port and a
// canonical path; String returns text that parses to the same Prefix.
func ParsePrefix(s string) (Prefix, error) {
	p, reason, err := parsePrefix(s)
	if reason != "" || err != nil {
		if len(s) > 100 {
			s = s[:100] + "..."
		}
		if err != nil {
			return Prefix{}, fmt.Errorf("egress prefix %q: %w", s, err)
		}
		return Prefix{}, fmt.Errorf("egress prefix %q: %s", s, reason)
	}
	return p, nil
}

// parsePrefix returns the prefix, or a reason it is refused, or an error
// from url.Parse.
func parsePrefix(s string) (Prefix, string, error) {
	switch {
	case s == "":
		return Prefix{}, "is empty", nil
	case len(s) > maxPrefixLen:
		return Prefix{}, fmt.Sprintf("is longer than %d bytes", maxPrefixLen), nil
	case !utf8.ValidString(s):
		return Prefix{}, "is not valid UTF-8", nil
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return Prefix{}, "contains a control character", nil
	case strings.ContainsFunc(s, unicode.IsSpace):
		return Prefix{}, "contains a space", nil
	case strings.ContainsAny(s, "?#"):
		return Prefix{}, "has a query or fragment (want a prefix like https://host/path/)", nil
	case strings.ContainsRune(s, '\\'):
		return Prefix{}, "contains a backslash", nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Prefix{}, "does not start with https:// or http://", nil
	}
	scheme = strings.ToLower(scheme)
	if scheme != "https" && scheme != "http" {
		return Prefix{}, "scheme must be https or http", nil
	}
	authority, _, _ := strings.Cut(rest, "/")
	switch {
	case strings.Contains(authority, "*"):
		return Prefix{}, "has a wildcard in the host (list each host)", nil
	case strings.Contains(authority, "@"):
		return Prefix{}, "contains a user name or password (use a secret instead)", nil
	case authority == "":
		return Prefix{}, "has no host (want a prefix like https://host/path/)", nil
	case hasNonASCII(authority):
		return Prefix{}, "host is not ASCII (write an internationalised name in its punycode form, xn--...)", nil
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue repeats the whole text, which the caller names
		}
		return Prefix{}, "", fmt.Errorf("not a URL: %w", err)
	}
	if u.User != nil || u.Opaque != "" || u.Host == "" {
		// The checks above make these unreachable; keep them as a floor.
		return Prefix{}, "is not a URL of the form https://host/path/", nil
	}
	host, port, err := canonicalHost(u.Scheme, u.Host)
	if err != nil {
		return Prefix{}, err.Error(), nil
	}
	escaped := u.EscapedPath()
	if escaped != "" && !strings.HasSuffix(escaped, "/") {
		return Prefix{}, "path must end with / (it is a prefix)", nil
	}
	path, err := canonicalPath(escaped)
	if err != nil {
		return Prefix{}, err.Error(), nil
	}
	if strings.Contains(path, "//") {
		return Prefix{}, "path has an empty segment (//)", nil
	}
	if strings.Contains(path, "%2A") {
		return Prefix{}, "has a wildcard in the path (a prefix already covers everything below it)", nil
	}
	return Prefix{Scheme: scheme, Host: host, Port: port, Path: path, Raw: s}, "", nil
}

// String returns the prefix in canonical form: the default port left out,
// an IPv6 host in brackets. ParsePrefix(p.String()) returns p, Raw aside.
func (p Prefix) String() string {
	host := p.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p.Port != defaultPort(p.Scheme) {
		host += ":" + p.Port
	}
	return p.Scheme + "://" + host + p.Path
}

// Allows reports whether p covers u: u is an absolute http or https URL
// without user info, its scheme, host and port equal p's, and its path,
// which must hold no dot-segment (".", "..", "%2e%2e", "..;x"), encoded
// slash or backslash, encoded percent sign, control or non-ASCII
// character, starts with p.Path in canonical form. The query is not
// looked at. A nil u is covered by nothing.
func (p Prefix) Allows(u *url.URL) bool {
	t, reason := parseTarget(u)
	return reason == "" && p.covers(t)
}

// covers reports whether the normalised target t falls under p. A Prefix
// not made by ParsePrefix covers nothing unless its Path is a directory.
func (p Prefix) covers(t target) bool {
	return strings.HasPrefix(p.Path, "/") && strings.HasSuffix(p.Path, "/") &&
		t.scheme == p.Scheme && t.host == p.Host && t.port == p.Port &&
		strings.HasPrefix(t.path, p.Path)
}

// target is a request URL reduced to what grants are matched on.
type target struct {
	scheme, host, port, path string
}

// parseTarget normalises u as ParsePrefix normalises a grant, or returns
// why u can be covered by no grant.
func parseTarget(u *url.URL) (target, string) {
	if u == nil {
		return target{}, "no URL"
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "https" && scheme != "http":
		return target{}, "scheme must be https or http"
	case u.Opaque != "" || u.Host == "":
		return target{}, "not an absolute URL with a host"
	case u.User != nil:
		return target{}, "URL contains a user name or password"
	}
	host, port, err := canonicalHost(scheme, u.Host)
	if err != nil {
		return target{}, err.Error()
	}
	path, err := canonicalPath(u.EscapedPath())
	if err != nil {
		return target{}, err.Error()
	}
	return target{scheme: scheme, host: host, port: port, path: path}, ""
}

// defaultPort returns the port a URL of scheme names when it names none.
func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// canonicalHost splits hostport, the (decoded) host of a URL, and returns
// its canonical host and port, or why it is refused.
func canonicalHost(scheme, hostport string) (host, port string, err error) {
	hasPort := false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", errors.New("host has an unclosed [")
		}
		host = hostport[1:end]
		switch rest := hostport[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return "", "", errors.New("host has text after ]")
		}
		addr, perr := netip.ParseAddr(host)
		switch {
		case perr != nil || !addr.Is6():
			return "", "", errors.New("host in brackets is not an IPv6 address")
		case addr.Zone() != "":
			return "", "", errors.New("IPv6 host has a zone")
		case addr.Is4In6():
			return "", "", errors.New("host is an IPv4-mapped IPv6 address (write the IPv4 address)")
		}
		host = addr.String()
	} else {
		host = hostport
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			host, port, hasPort = hostport[:i], hostport[i+1:], true
		}
		if addr, perr := netip.ParseAddr(host); perr == nil {
			if !addr.Is4() {
				return "", "", errors.New("IPv6 host must be in brackets")
			}
			host = addr.String()
		} else if host, err = canonicalName(host); err != nil {
			return "", "", err
		}
	}
	if !hasPort {
		return host, defaultPort(scheme), nil
	}
	if !validPort(port) {
		return "", "", fmt.Errorf("port %q is not a number from 1 to 65535 without leading zeros", port)
	}
	return host, port, nil
}

// validPort reports whether s is a decimal port from 1 to 65535, written
// without leading zeros.
func validPort(s string) bool {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

// canonicalName returns the lower-case form of the DNS name h, or why it is
// refused. Labels hold letters, digits, hyphens and underscores; a name
// whose last label is numeric is refused, since resolvers may read it as an
// IPv4 address in another notation ("127.1", "0x7f.1", "2130706433").
func canonicalName(h string) (string, error) {
	switch {
	case h == "":
		return "", errors.New("has no host")
	case hasNonASCII(h):
		return "", errors.New("host is not ASCII (write an internationalised name in its punycode form, xn--...)")
	case len(h) > 253:
		return "", errors.New("host name is longer than 253 bytes")
	}
	h = strings.ToLower(h)
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("host %q has an empty label (no leading, trailing or double dots)", h)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("host %q has a label longer than 63 bytes", h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("host %q has a label starting or ending with -", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host %q contains %q (want letters, digits, - and _)", h, c)
			}
		}
	}
	if numeric(labels[len(labels)-1]) {
		return "", fmt.Errorf("host %q looks like an IPv4 address but is not in dotted-decimal form", h)
	}
	return h, nil
}

// numeric reports whether label reads as a number: all decimal digits, or
// "0x" and hex digits.
func numeric(label string) bool {
	digits, hex := label, false
	if strings.HasPrefix(label, "0x") {
		digits, hex = label[2:], true
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !('0' <= c && c <= '9' || hex && 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true // "0x" alone is a number too, to a WHATWG URL parser
}

// canonicalPath returns the canonical form of the escaped path p: each
// segment percent-decoded, then escaped by url.PathEscape, so that two
// spellings of one path compare equal. An empty path becomes "/".
//
// It refuses what a server might read as a different path than a prefix
// comparison sees: dot-segments (also encoded, also followed by ";params",
// as Tomcat reads "..;"), encoded slashes, backslashes (raw or encoded),
// an encoded percent sign (decoded twice, "%252e" becomes "."), control
// characters, and non-ASCII characters (Unicode normalisation turns
// U+FF0E into "." and U+FF0F into "/").
func canonicalPath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' {
		return "", errors.New("path does not start with /")
	}
	var b strings.Builder
	b.Grow(len(p))
	for seg := range strings.SplitSeq(p[1:], "/") {
		d, err := url.PathUnescape(seg)
		if err != nil {
			return "", errors.New("path has a malformed percent-encoding")
		}
		if reason := badSegment(d); reason != "" {
			return "", errors.New(reason)
		}
		b.WriteByte('/')
		b.WriteString(url.PathEscape(d))
	}
	return b.String(), nil
}

// badSegment returns why the decoded path segment d is refused, or "".
func badSegment(d string) string {
	name, _, _ := strings.Cut(d, ";")
	switch {
	case strings.Contains(name, ".") && strings.Trim(name, ". ") == "":
		return "path has a dot-segment (., .. or an encoded form)"
	case strings.ContainsAny(d, `/\`):
		return "path has an encoded slash or a backslash"
	case strings.Contains(d, "%"):
		return "path has an encoded percent sign (%25), which a server might decode twice"
	}
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c < 0x20 || c == 0x7f:
			return "path has a control character"
		case c >= 0x80:
			return "path has a non-ASCII character"
		}
	}
	return ""
}

// hasNonASCII reports whether s holds a byte outside ASCII.
func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}
