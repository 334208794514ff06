package fn

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// A Principal is one link of the chain of callers Moat hands a function in
// REMOTE_USER.
type Principal struct {
	// Kind is "fn" (another function), "key" (an API key), "admin" (the
	// admin token) or "jwt" (a verified JWT).
	Kind string
	// ID is the function's name, the key's id or the JWT's subject as the
	// identity provider wrote it (unescaped); "" for admin.
	ID string
}

// String is the link as REMOTE_USER spells it.
func (p Principal) String() string {
	switch p.Kind {
	case "admin":
		return "admin"
	case "jwt":
		return "jwt:" + escapeSubject(p.ID)
	}
	return p.Kind + ":" + p.ID
}

// ErrCaller reports a REMOTE_USER that does not follow Moat's grammar
// (docs/security.md in the Moat repository).
var ErrCaller = errors.New("fn: malformed REMOTE_USER")

// Caller parses the REMOTE_USER of this invocation: see [ParseCaller].
func Caller() ([]Principal, error) { return ParseCaller(os.Getenv("REMOTE_USER")) }

// ParseCaller parses a REMOTE_USER value into the chain of callers, nearest
// first: for a call from function "contact" made on behalf of API key
// ab12, [{fn contact} {key ab12}]. The last link is who called from outside
// (absent when the outermost function is public); every link before it is a
// function. "" is no caller at all: nil, nil. Anything else that does not
// follow the grammar, including a subject escaped in any but its one
// spelling, is ErrCaller: never guess at an identity.
func ParseCaller(s string) ([]Principal, error) {
	if s == "" {
		return nil, nil
	}
	links := strings.Split(s, ";")
	chain := make([]Principal, 0, len(links))
	for i, link := range links {
		p, err := parseLink(link)
		if err != nil {
			return nil, err
		}
		if p.Kind != "fn" && i != len(links)-1 {
			return nil, fmt.Errorf("%w: %s before the end of the chain", ErrCaller, p.Kind)
		}
		chain = append(chain, p)
	}
	return chain, nil
}

func parseLink(link string) (Principal, error) {
	if link == "admin" {
		return Principal{Kind: "admin"}, nil
	}
	kind, id, _ := strings.Cut(link, ":")
	switch kind {
	case "fn", "key":
		if !plainID(id) {
			return Principal{}, fmt.Errorf("%w: %s id %q", ErrCaller, kind, id)
		}
		return Principal{Kind: kind, ID: id}, nil
	case "jwt":
		sub, ok := unescapeSubject(id)
		if !ok {
			return Principal{}, fmt.Errorf("%w: jwt subject %q", ErrCaller, id)
		}
		return Principal{Kind: "jwt", ID: sub}, nil
	}
	return Principal{}, fmt.Errorf("%w: link %q", ErrCaller, link)
}

// plainID: a function name or key id: letters, digits, "-" and "_".
func plainID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func safeSubject(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~@+", c) >= 0
}

const upperHex = "0123456789ABCDEF"

func escapeSubject(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; safeSubject(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return b.String()
}

// unescapeSubject decodes a subject written in its one spelling: safe bytes
// as themselves, every other byte as upper-case %XX.
func unescapeSubject(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeSubject(c) {
			b.WriteByte(c)
			continue
		}
		if c != '%' || i+2 >= len(s) {
			return "", false
		}
		hi, lo := strings.IndexByte(upperHex, s[i+1]), strings.IndexByte(upperHex, s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		d := byte(hi<<4 | lo)
		if safeSubject(d) {
			return "", false // not the one spelling
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), true
}
