package auth

import (
	"strings"
	"testing"
)

func TestJWTUser(t *testing.T) {
	for sub, want := range map[string]string{
		"carole":            "jwt:carole",
		"mallory;key:admin": "jwt:mallory%3Bkey%3Aadmin",
		"a%3Bb":             "jwt:a%253Bb",
		"auth0|42":          "jwt:auth0%7C42",
		"x\u00e9":           "jwt:x%C3%A9",
	} {
		if got := JWTUser(sub); got != want {
			t.Errorf("JWTUser(%q) = %q, want %q", sub, got, want)
		}
	}
}

func FuzzEscapeSubject(f *testing.F) {
	f.Add("mallory;key:admin")
	f.Fuzz(func(t *testing.T, sub string) {
		e := EscapeSubject(sub)
		for i := 0; i < len(e); i++ {
			if c := e[i]; !safeSubject(c) && !(c == '%' && i+2 < len(e) && strings.IndexByte("0123456789ABCDEF", e[i+1]) >= 0 && strings.IndexByte("0123456789ABCDEF", e[i+2]) >= 0) {
				t.Fatalf("%q escaped as %q: byte %d", sub, e, i)
			}
		}
	})
}
