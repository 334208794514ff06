package gateway

import (
	"bufio"
	"net/http"
	stdcgi "net/http/cgi"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/cgi"
)

// handed builds the CGI request the gateway would hand a function for the
// raw request target and Host, and returns what Go's own net/http/cgi (the
// library Go functions read it with) makes of it. ok is false when the
// gateway refuses the request.
func handed(t *testing.T, target, host string) (env map[string]string, child *http.Request, ok bool) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")))
	if err != nil || !strings.HasPrefix(r.URL.Path, Prefix) {
		return nil, nil, false
	}
	_, pathInfo, rawPath, ok := Target(r)
	if !ok {
		return nil, nil, false
	}
	env = map[string]string{}
	for _, kv := range cgi.Env(nil, &cgi.Request{
		Method: r.Method, PathInfo: pathInfo, RawPath: rawPath, RawQuery: r.URL.RawQuery,
		Proto: r.Proto, Host: r.Host, RemoteAddr: "192.0.2.1:1", Header: r.Header,
	}) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	child, err = stdcgi.RequestFromMap(env)
	if err != nil {
		t.Fatalf("%q (Host %q): net/http/cgi cannot read what the function was handed: %v\n%v", target, host, err, env)
	}
	return env, child, true
}

func TestTargetReachesFunctionAsSent(t *testing.T) {
	for _, tt := range []struct {
		target, path, query, pathInfo string
	}{
		// An escaped "?" stays in the path: it is not a query.
		{"/fn/f/x%3Frole%3Dadmin?role=user", "/x?role=admin", "role=user", "/x?role=admin"},
		// An escaped "#" hides nothing.
		{"/fn/f/a%23b?q=1", "/a#b", "q=1", "/a#b"},
		// An escaped "%" is a percent sign, not a 502.
		{"/fn/f/100%25", "/100%", "", "/100%"},
		{"/fn/f/100%25?x=%25", "/100%", "x=%25", "/100%"},
		{"/fn/f/a%2Fb", "/a/b", "", "/a/b"},
		{"/fn/f", "/", "", ""},
		{"/fn/f/", "/", "", "/"},
		{"/fn/f/%E2%82%AC?%zz", "/€", "%zz", "/€"},
		{"/fn/f/a;b=c/%2e%2e/d", "/a;b=c/../d", "", "/a;b=c/../d"},
		// A path starting "//" is not a host.
		{"/fn/f//evil.example/x?a=b", "//evil.example/x", "a=b", "//evil.example/x"},
		{"/fn/f//", "//", "", "//"},
	} {
		env, child, ok := handed(t, tt.target, "moat.example:8080")
		if !ok {
			t.Errorf("%q refused", tt.target)
			continue
		}
		if child.URL.Path != tt.path || child.URL.RawQuery != tt.query || env["PATH_INFO"] != tt.pathInfo || env["QUERY_STRING"] != tt.query {
			t.Errorf("%q reached the function as path %q query %q PATH_INFO %q QUERY_STRING %q, want %q %q %q",
				tt.target, child.URL.Path, child.URL.RawQuery, env["PATH_INFO"], env["QUERY_STRING"], tt.path, tt.query, tt.pathInfo)
		}
		want := strings.TrimPrefix(tt.target, "/fn/f")
		if !strings.HasPrefix(want, "/") {
			want = "/" + want
		}
		if strings.HasPrefix(want, "//") {
			// Else read as "//host/path": the second slash goes escaped.
			want = "/%2F" + want[2:]
		}
		if env["REQUEST_URI"] != want {
			t.Errorf("%q: REQUEST_URI %q, want the target as sent %q", tt.target, env["REQUEST_URI"], want)
		}
	}
}

func TestTargetRefusesWhatCannotPassAsSent(t *testing.T) {
	for _, tt := range []struct{ target, host string }{
		{"/fn/f/a?q=1#frag", "h"},
		{"/fn/f/a#frag", "h"},
	} {
		if _, _, ok := handed(t, tt.target, tt.host); ok {
			t.Errorf("%q with Host %q was handed to the function", tt.target, tt.host)
		}
	}
	for _, host := range []string{"h", "h:8080", "127.0.0.1:1", "[::1]:8443", "moat.example"} {
		if _, _, ok := handed(t, "/fn/f/a", host); !ok {
			t.Errorf("Host %q refused", host)
		}
	}
}

// FuzzTarget: whatever request target and Host the client sends, the
// function is either refused it (400) or handed it so that Go's
// net/http/cgi reads it without error as exactly what was sent: the
// decoded path is PATH_INFO, the query is the raw query.
func FuzzTarget(f *testing.F) {
	for _, s := range []string{"/fn/f/x%3Frole%3Dadmin?role=user", "/fn/f/a%23b?q=1", "/fn/f/100%25", "/fn/f", "/fn/f/%zz", "/fn/%66/a"} {
		f.Add(s, "h:1")
	}
	f.Fuzz(func(t *testing.T, target, host string) {
		if strings.ContainsAny(target+host, " \r\n") {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")))
		if err != nil || !strings.HasPrefix(r.URL.Path, Prefix) {
			return
		}
		env, child, ok := handed(t, target, host)
		if !ok {
			return
		}
		wantPath := strings.TrimPrefix(r.URL.Path, Prefix)
		if i := strings.IndexByte(wantPath, '/'); i >= 0 {
			wantPath = wantPath[i:]
		} else {
			wantPath = ""
		}
		if env["PATH_INFO"] != wantPath {
			t.Fatalf("%q: PATH_INFO %q, want %q", target, env["PATH_INFO"], wantPath)
		}
		if wantPath == "" {
			wantPath = "/"
		}
		if child.URL.Path != wantPath || child.URL.RawQuery != r.URL.RawQuery || env["QUERY_STRING"] != r.URL.RawQuery {
			t.Fatalf("%q: handed as path %q query %q, want %q %q", target, child.URL.Path, child.URL.RawQuery, wantPath, r.URL.RawQuery)
		}
	})
}
