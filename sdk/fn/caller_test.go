package fn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseCaller(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // the chain as fmt prints it; "" with err
	}{
		{"", "[]"},
		{"admin", "[{admin }]"},
		{"key:ab12cd", "[{key ab12cd}]"},
		{"fn:contact;key:ab12cd", "[{fn contact} {key ab12cd}]"},
		{"fn:a;fn:b;jwt:carole", "[{fn a} {fn b} {jwt carole}]"},
		{"fn:contact", "[{fn contact}]"},
		{"jwt:mallory%3Bkey%3Aadmin", "[{jwt mallory;key:admin}]"},
		{"jwt:auth0%7C42", "[{jwt auth0|42}]"},
		{"jwt:%E2%82%AC", "[{jwt €}]"},
		{"jwt:a.b_c-d~e@f+g", "[{jwt a.b_c-d~e@f+g}]"},
	} {
		chain, err := ParseCaller(tt.in)
		var got []string
		for _, p := range chain {
			got = append(got, fmt.Sprintf("{%s %s}", p.Kind, p.ID))
		}
		if err != nil || "["+strings.Join(got, " ")+"]" != tt.want {
			t.Errorf("ParseCaller(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{
		"jwt:mallory;key:admin", // a forged chain: jwt before the end
		"key:x;fn:a", "admin;admin", ";", "fn:", "fn:a;", "key:", "jwt:", "root",
		"jwt:a%3b", "jwt:a%41", "jwt:a%", "jwt:a%3", "jwt:a%zz", "jwt:a b", "jwt:a,b", "jwt:a:b",
		"fn:a b", "key:a:b", "fn:a\x00", "jwt:a\n",
	} {
		if got, err := ParseCaller(in); !errors.Is(err, ErrCaller) {
			t.Errorf("ParseCaller(%q) = %v, %v; want ErrCaller", in, got, err)
		}
	}
}

// FuzzParseCaller: every chain ParseCaller accepts spells back exactly as
// it came (one spelling per identity), and every subject escapes to a link
// that parses back to it, with nothing a parser could split on.
func FuzzParseCaller(f *testing.F) {
	for _, s := range []string{"fn:a;key:b", "jwt:mallory%3Bkey%3Aadmin", "admin", "jwt:%E2%82%AC"} {
		f.Add(s, "mallory;key:admin")
	}
	f.Fuzz(func(t *testing.T, remoteUser, subject string) {
		if chain, err := ParseCaller(remoteUser); err == nil {
			links := make([]string, len(chain))
			for i, p := range chain {
				links[i] = p.String()
			}
			if back := strings.Join(links, ";"); back != remoteUser {
				t.Fatalf("%q parsed as %v, which spells %q", remoteUser, chain, back)
			}
		}
		if subject == "" {
			return
		}
		link := Principal{Kind: "jwt", ID: subject}.String()
		if strings.ContainsAny(link[4:], ";:, \t\r\n\"'=/\\") {
			t.Fatalf("subject %q escaped as %q", subject, link)
		}
		chain, err := ParseCaller("fn:a;" + link)
		if err != nil || len(chain) != 2 || chain[1].ID != subject {
			t.Fatalf("subject %q: %q parsed as %v, %v", subject, link, chain, err)
		}
	})
}
