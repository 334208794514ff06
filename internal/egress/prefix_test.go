package egress

import (
	"net/url"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want Prefix // Raw is filled from in
		str  string // want.String()
	}{
		{"https://mail.example.net/v3/", Prefix{"https", "mail.example.net", "443", "/v3/", ""}, "https://mail.example.net/v3/"},
		{"http://127.0.0.1:9000/hook/", Prefix{"http", "127.0.0.1", "9000", "/hook/", ""}, "http://127.0.0.1:9000/hook/"},
		{"HTTPS://Mail.Example.NET/V3/", Prefix{"https", "mail.example.net", "443", "/V3/", ""}, "https://mail.example.net/V3/"},
		{"https://example.com", Prefix{"https", "example.com", "443", "/", ""}, "https://example.com/"},
		{"https://example.com/", Prefix{"https", "example.com", "443", "/", ""}, "https://example.com/"},
		{"https://example.com:443/", Prefix{"https", "example.com", "443", "/", ""}, "https://example.com/"},
		{"http://example.com:80/", Prefix{"http", "example.com", "80", "/", ""}, "http://example.com/"},
		{"http://example.com:443/", Prefix{"http", "example.com", "443", "/", ""}, "http://example.com:443/"},
		{"https://example.com:8443", Prefix{"https", "example.com", "8443", "/", ""}, "https://example.com:8443/"},
		{"https://[2001:DB8:0:0::1]:8443/a/", Prefix{"https", "2001:db8::1", "8443", "/a/", ""}, "https://[2001:db8::1]:8443/a/"},
		{"https://[::1]/", Prefix{"https", "::1", "443", "/", ""}, "https://[::1]/"},
		{"https://xn--bcher-kva.example/", Prefix{"https", "xn--bcher-kva.example", "443", "/", ""}, "https://xn--bcher-kva.example/"},
		{"https://api_v1.example.com/", Prefix{"https", "api_v1.example.com", "443", "/", ""}, "https://api_v1.example.com/"},
		{"https://localhost:65535/", Prefix{"https", "localhost", "65535", "/", ""}, "https://localhost:65535/"},
		{"https://h.example/a%20b/", Prefix{"https", "h.example", "443", "/a%20b/", ""}, "https://h.example/a%20b/"},
		{"https://h.example/%7Euser/%41/", Prefix{"https", "h.example", "443", "/~user/A/", ""}, "https://h.example/~user/A/"},
		{"https://h.example/a:b@c/", Prefix{"https", "h.example", "443", "/a:b@c/", ""}, "https://h.example/a:b@c/"},
		{"https://1.example/", Prefix{"https", "1.example", "443", "/", ""}, "https://1.example/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if err != nil {
				t.Fatalf("ParsePrefix(%q): %v", tt.in, err)
			}
			want := tt.want
			want.Raw = tt.in
			if got != want {
				t.Fatalf("ParsePrefix(%q) = %+v, want %+v", tt.in, got, want)
			}
			if s := got.String(); s != tt.str {
				t.Fatalf("ParsePrefix(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
			again, err := ParsePrefix(got.String())
			if err != nil {
				t.Fatalf("ParsePrefix(%q): %v", got.String(), err)
			}
			again.Raw = got.Raw
			if again != got {
				t.Fatalf("ParsePrefix(%q) = %+v, want %+v", got.String(), again, got)
			}
		})
	}
}

func TestParsePrefixRefuses(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "empty"},
		{"mail.example.net/v3/", "https://"},
		{"//mail.example.net/v3/", "https://"},
		{"ftp://mail.example.net/", "scheme"},
		{"file:///etc/passwd", "scheme"},
		{"javascript:alert(1)", "https://"},
		{"https:mail.example.net/", "https://"},
		{"https:/mail.example.net/", "https://"},
		{"https://", "no host"},
		{"https:///v3/", "no host"},
		{"https://:443/", "no host"},
		{"https://*.example.com/", "wildcard"},
		{"https://*/", "wildcard"},
		{"https://api.*.com/", "wildcard"},
		{"https://h.example/*/", "wildcard"},
		{"https://h.example/%2a/", "wildcard"},
		{"https://user:pw@h.example/", "user name"},
		{"https://user@h.example/", "user name"},
		{"https://@h.example/", "user name"},
		{"https://evil.example@h.example/", "user name"},
		{"https://bücher.example/", "punycode"},
		{"https://h%C3%BC.example/", "punycode"},
		{"https://h.example/café/", "non-ASCII"},
		{"https://h.example/caf%C3%A9/", "non-ASCII"},
		{"https://h.example/％2e％2e/", "non-ASCII"},
		{"https://h.example/v3", "end with /"},
		{"https://h.example/v3/send", "end with /"},
		{"https://h.example /", "space"},
		{" https://h.example/", "space"},
		{"https://h.example/a b/", "space"},
		{"https://h.example/\u00a0/", "space"},
		{"https://h.example/\t/", "control"},
		{"https://h.example/\x00/", "control"},
		{"https://h.example/\x7f/", "control"},
		{"https://h.example/%00/", "control"},
		{"https://h.example/%0a/", "control"},
		{"https://h.example/\xff/", "UTF-8"},
		{"https://h.example/?q=1", "query"},
		{"https://h.example/#frag", "fragment"},
		{"https://h.example:0/", "port"},
		{"https://h.example:65536/", "port"},
		{"https://h.example:99999/", "port"},
		{"https://h.example:0443/", "port"},
		{"https://h.example:/", "port"},
		{"https://h.example:-1/", "URL"},
		{"https://h.example:https/", "URL"},
		{"https://h.example:443:443/", "URL"},
		{"https://[::1/", "URL"},
		{"https://::1/", "URL"},
		{"https://[fe80::1%25eth0]/", "zone"},
		{"https://[::ffff:127.0.0.1]/", "IPv4-mapped"},
		{"https://[127.0.0.1]/", "URL"},
		{"https://[::1]x/", "URL"},
		{"https://127.1/", "dotted-decimal"},
		{"https://0x7f.0.0.1/", "dotted-decimal"},
		{"https://2130706433/", "dotted-decimal"},
		{"https://0177.0.0.1/", "dotted-decimal"},
		{"https://127.000.000.001/", "dotted-decimal"},
		{"https://1.2.3.0x4/", "dotted-decimal"},
		{"https://h.example./", "empty label"},
		{"https://.h.example/", "empty label"},
		{"https://h..example/", "empty label"},
		{"https://-h.example/", "starting or ending with -"},
		{"https://h-.example/", "starting or ending with -"},
		{"https://h!.example/", "contains"},
		{"https://h%2eexample/", "URL"},
		{"https://" + strings.Repeat("a", 64) + ".example/", "longer than 63"},
		{"https://" + strings.Repeat("a.", 127) + "example/", "longer than 253"},
		{"https://h.example/" + strings.Repeat("a", 2100) + "/", "longer than"},
		{"https://h.example/v3/../admin/", "dot-segment"},
		{"https://h.example/v3/./", "dot-segment"},
		{"https://h.example/../", "dot-segment"},
		{"https://h.example/v3/%2e%2e/", "dot-segment"},
		{"https://h.example/v3/%2E./", "dot-segment"},
		{"https://h.example/v3/..;x/", "dot-segment"},
		{"https://h.example/a%2fb/", "encoded slash"},
		{"https://h.example/a%5cb/", "backslash"},
		{"https://h.example\\@evil.example/", "backslash"},
		{"https://h.example/a\\b/", "backslash"},
		{"https://h.example/%252e%252e/", "encoded percent"},
		{"https://h.example//", "empty segment"},
		{"https://h.example/a//b/", "empty segment"},
		{"https://h.example/%zz/", "URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			if err == nil {
				t.Fatalf("ParsePrefix(%q) = %+v, want an error containing %q", tt.in, p, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParsePrefix(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	mail := mustPrefix(t, "https://mail.example.net/v3/")
	root := mustPrefix(t, "http://127.0.0.1:9000/")
	v6 := mustPrefix(t, "https://[2001:db8::1]:8443/api/")
	tests := []struct {
		p    Prefix
		url  string
		want bool
	}{
		{mail, "https://mail.example.net/v3/", true},
		{mail, "https://mail.example.net/v3/send", true},
		{mail, "https://mail.example.net/v3/a/b/c?x=1&y=../../admin", true},
		{mail, "https://MAIL.Example.NET/v3/send", true},
		{mail, "HTTPS://mail.example.net/v3/send", true},
		{mail, "https://mail.example.net:443/v3/send", true},
		{mail, "https://mail.example.net/v3/a%20b", true},
		{mail, "https://mail.example.net/%76%33/send", true},
		{mail, "https://mail.example.net/v3/send#frag", true},
		{mail, "https://mail.example.net/v3//x", true},
		{mail, "https://mail.example.net/v3/...x", true},
		{mail, "https://mail.example.net/v3/.well-known", true},

		{mail, "https://mail.example.net/v3", false},
		{mail, "https://mail.example.net/", false},
		{mail, "https://mail.example.net", false},
		{mail, "https://mail.example.net/v4/send", false},
		{mail, "https://mail.example.net/V3/send", false},
		{mail, "https://mail.example.net/v3x/send", false},
		{mail, "https://mail.example.net/v3/../admin", false},
		{mail, "https://mail.example.net/v3/./send", false},
		{mail, "https://mail.example.net/v3/%2e%2e/admin", false},
		{mail, "https://mail.example.net/v3/%2E%2E/admin", false},
		{mail, "https://mail.example.net/v3/.%2e/admin", false},
		{mail, "https://mail.example.net/v3/%2e/admin", false},
		{mail, "https://mail.example.net/v3/..;/admin", false},
		{mail, "https://mail.example.net/v3/..%3b/admin", false},
		{mail, "https://mail.example.net/v3/...", false},
		{mail, "https://mail.example.net/v3/.. /admin", false},
		{mail, "https://mail.example.net/v3/..%2fadmin", false},
		{mail, "https://mail.example.net/v3%2f..%2fadmin", false},
		{mail, "https://mail.example.net/v3/%2F", false},
		{mail, "https://mail.example.net/v3/..%5cadmin", false},
		{mail, "https://mail.example.net/v3/..\\admin", false},
		{mail, "https://mail.example.net/v3/%252e%252e/admin", false},
		{mail, "https://mail.example.net/v3/%25", false},
		{mail, "https://mail.example.net/v3/%00", false},
		{mail, "https://mail.example.net/v3/%0d%0aHost:%20evil", false},
		{mail, "https://mail.example.net/v3/%EF%BC%8E%EF%BC%8E/admin", false},
		{mail, "https://mail.example.net/v3/café", false},
		{mail, "http://mail.example.net/v3/send", false},
		{mail, "https://mail.example.net:8443/v3/send", false},
		{mail, "https://user@mail.example.net/v3/send", false},
		{mail, "https://user:pw@mail.example.net/v3/send", false},
		{mail, "https://mail.example.net./v3/send", false},
		{mail, "https://mail.example.net.evil.example/v3/send", false},
		{mail, "https://evil.example/mail.example.net/v3/send", false},
		{mail, "https://evil.example/v3/send", false},
		{mail, "//mail.example.net/v3/send", false},
		{mail, "/v3/send", false},
		{mail, "mail.example.net/v3/send", false},
		{mail, "ftp://mail.example.net/v3/send", false},
		{mail, "https:mail.example.net/v3/send", false},

		{root, "http://127.0.0.1:9000/", true},
		{root, "http://127.0.0.1:9000", true},
		{root, "http://127.0.0.1:9000/anything", true},
		{root, "http://127.0.0.1:9001/", false},
		{root, "http://127.0.0.1/", false},
		{root, "https://127.0.0.1:9000/", false},
		{root, "http://localhost:9000/", false},
		{root, "http://127.1:9000/", false},
		{root, "http://2130706433:9000/", false},
		{root, "http://[::ffff:127.0.0.1]:9000/", false},
		{root, "http://[::1]:9000/", false},

		{v6, "https://[2001:db8::1]:8443/api/x", true},
		{v6, "https://[2001:DB8:0::1]:8443/api/x", true},
		{v6, "https://[2001:db8::1%25eth0]:8443/api/x", false},
		{v6, "https://[2001:db8::1]/api/x", false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			if tt.want {
				t.Errorf("url.Parse(%q): %v", tt.url, err)
			}
			continue
		}
		if got := tt.p.Allows(u); got != tt.want {
			t.Errorf("Prefix(%q).Allows(%q) = %v, want %v", tt.p.Raw, tt.url, got, tt.want)
		}
	}
}

func TestAllowsOddURLs(t *testing.T) {
	p := mustPrefix(t, "https://h.example/")
	tests := []*url.URL{
		nil,
		{},
		{Scheme: "https", Host: "h.example", Opaque: "//evil.example/"},
		{Scheme: "https", Host: "h.example", Path: "relative"},
		{Scheme: "https", Host: "h.example", Path: "/a/../b"},
		{Scheme: "https", Host: "h.example", Path: "/a/b", RawPath: "/a%2fb"},
		{Scheme: "https", Host: "h.example\x00", Path: "/"},
		{Scheme: "https", Host: "h.example", User: url.User(""), Path: "/"},
	}
	for _, u := range tests {
		if p.Allows(u) {
			t.Errorf("Allows(%#v) = true, want false", u)
		}
	}
	var zero Prefix
	if zero.Allows(&url.URL{Scheme: "https", Host: "h.example", Path: "/"}) {
		t.Error("Prefix{}.Allows(...) = true, want false")
	}
}

func mustPrefix(t testing.TB, s string) Prefix {
	t.Helper()
	p, err := ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
