package auth

import "strings"

// REMOTE_USER, as functions see it, is the chain of callers, nearest first:
//
//	remote-user = "" / link *( ";" link )
//	link        = "fn:" name         ; a function (name as in manifests)
//	            / "key:" key-id      ; an API key
//	            / "admin"            ; the admin token
//	            / "jwt:" subject     ; a JWT's sub, escaped
//	subject     = 1*( safe / "%" HEXDIG HEXDIG )   ; upper-case hex
//	safe        = ALPHA / DIGIT / "-" / "." / "_" / "~" / "@" / "+"
//
// Only the last link may be other than fn:. Every byte of a subject outside
// safe is escaped, and only those are, so there is one spelling of each
// subject and no ";", ":", "%", space, comma, quote or control character
// reaches a function unescaped for any parser to split on. The Go SDK's
// fn.ParseCaller reads it.

// JWTUser is how a JWT's subject is shown in REMOTE_USER.
func JWTUser(subject string) string {
	return "jwt:" + EscapeSubject(subject)
}

// EscapeSubject escapes every byte of s outside the safe set as %XX.
func EscapeSubject(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeSubject(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func safeSubject(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~@+", c) >= 0
}
