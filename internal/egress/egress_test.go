package egress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a server certificate for the names and addresses, valid
// from notBefore to notAfter.
func (ca *testCA) issue(t testing.TB, notBefore, notAfter time.Time, names []string, ips []net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "upstream"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// goodCert is valid now for localhost, 127.0.0.1 and ::1.
func (ca *testCA) goodCert(t testing.TB) tls.Certificate {
	t.Helper()
	return ca.issue(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour),
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
}

// upstream is a test server's handler; it counts and records requests.
type upstream struct {
	hits  atomic.Int64
	admin atomic.Int64
	loops atomic.Int64
	mu    sync.Mutex
	last  http.Header
	mux   *http.ServeMux
}

func newUpstream() *upstream {
	u := &upstream{mux: http.NewServeMux()}
	u.mux.HandleFunc("/v3/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Reply", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, r.Method+" "+string(b))
	})
	u.mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		u.admin.Add(1)
		io.WriteString(w, "admin")
	})
	u.mux.HandleFunc("/v3/redirect", func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusFound
		if c := r.URL.Query().Get("code"); c != "" {
			code, _ = strconv.Atoi(c)
		}
		w.Header().Set("Location", r.URL.Query().Get("to"))
		w.WriteHeader(code)
	})
	u.mux.HandleFunc("/v3/loop", func(w http.ResponseWriter, r *http.Request) {
		u.loops.Add(1)
		http.Redirect(w, r, "/v3/loop", http.StatusFound)
	})
	u.mux.HandleFunc("/v3/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write([]byte(strings.Repeat("x", n)))
	})
	u.mux.HandleFunc("/v3/stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for ; n > 0; n -= 100 {
			w.Write([]byte(strings.Repeat("x", min(n, 100))))
			w.(http.Flusher).Flush()
		}
	})
	u.mux.HandleFunc("/v3/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	u.mux.HandleFunc("/v3/slowbody", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	u.mu.Lock()
	u.last = r.Header.Clone()
	u.mu.Unlock()
	u.mux.ServeHTTP(w, r)
}

func (u *upstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// startTLS starts an https server on loopback that presents cert.
func startTLS(t testing.TB, cert tls.Certificate, cfg *tls.Config, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.Certificates = []tls.Certificate{cert}
	s.TLS = cfg
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// startHTTP starts a plain http server on loopback.
func startHTTP(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// port returns the port of a test server.
func port(t testing.TB, s *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func prefixes(t testing.TB, ss ...string) []Prefix {
	t.Helper()
	ps := make([]Prefix, len(ss))
	for i, s := range ss {
		ps[i] = mustPrefix(t, s)
	}
	return ps
}

// fixture is a client and one https upstream it trusts.
type fixture struct {
	c    *Client
	ca   *testCA // the client trusts it
	up   *upstream
	srv  *httptest.Server
	base string // https://127.0.0.1:PORT
	port string
}

// allowLoopback is what the tests' operator allows: the upstreams' range.
var allowLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	ca := newTestCA(t, "moat test CA")
	up := newUpstream()
	srv := startTLS(t, ca.goodCert(t), nil, up)
	cfg.RootCAs = ca.pool
	cfg.Allow = append(cfg.Allow, allowLoopback...) // the upstreams listen on 127.0.0.1
	return &fixture{c: New(cfg), ca: ca, up: up, srv: srv, base: srv.URL, port: port(t, srv)}
}

func wantDenied(t testing.TB, err error, want string) *DeniedError {
	t.Helper()
	var d *DeniedError
	if !errors.As(err, &d) {
		t.Fatalf("Do error = %v, want a *DeniedError", err)
	}
	if !strings.Contains(d.Error(), want) {
		t.Fatalf("Do error = %q, want %q", d.Error(), want)
	}
	return d
}

func TestDoAllowed(t *testing.T) {
	f := newFixture(t, Config{})
	grants := prefixes(t, "https://mail.example.net/v3/", f.base+"/v3/")
	h := http.Header{"X-Custom": {"one", "two"}, "authorization": {"Bearer token"}}
	resp, err := f.c.Do(t.Context(), grants, "POST", f.base+"/v3/echo?q=1", h, []byte("hello"))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.Status != http.StatusCreated || resp.Header.Get("X-Reply") != "yes" || string(resp.Body) != "POST hello" {
		t.Fatalf("Do = %d %v %q, want 201, X-Reply: yes, \"POST hello\"", resp.Status, resp.Header, resp.Body)
	}
	got := f.up.lastHeader()
	if v := got.Values("X-Custom"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Errorf("upstream saw X-Custom %q, want [one two]", v)
	}
	if v := got.Get("Authorization"); v != "Bearer token" {
		t.Errorf("upstream saw Authorization %q, want the guest's", v)
	}

	// Other methods, no body.
	resp, err = f.c.Do(t.Context(), grants, "PURGE", f.base+"/v3/echo", nil, nil)
	if err != nil || string(resp.Body) != "PURGE " {
		t.Fatalf("Do(PURGE) = %v, %v, want body \"PURGE \"", resp, err)
	}
}

func TestDoRefusesUngranted(t *testing.T) {
	f := newFixture(t, Config{})
	grants := prefixes(t, f.base+"/v3/")
	tests := []struct{ name, url, want string }{
		{"outside the path", f.base + "/admin/", "no egress grant"},
		{"prefix without slash", f.base + "/v3", "no egress grant"},
		{"dot-segment", f.base + "/v3/../admin/", "dot-segment"},
		{"encoded dot-segment", f.base + "/v3/%2e%2e/admin/", "dot-segment"},
		{"mixed encoded dot-segment", f.base + "/v3/.%2E/admin/", "dot-segment"},
		{"tomcat dot-segment", f.base + "/v3/..;/admin/", "dot-segment"},
		{"encoded slash", f.base + "/v3/..%2fadmin/", "encoded slash"},
		{"encoded backslash", f.base + "/v3/..%5cadmin/", "backslash"},
		{"double encoding", f.base + "/v3/%252e%252e/admin/", "encoded percent"},
		{"unlisted host", "https://evil.example/v3/echo", "no egress grant"},
		{"plain http", "http://127.0.0.1:" + f.port + "/v3/echo", "no egress grant"},
		{"other port", "https://127.0.0.1:1/v3/echo", "no egress grant"},
		{"user info", "https://me@127.0.0.1:" + f.port + "/v3/echo", "user name"},
		{"not http", "file:///etc/passwd", "scheme"},
		{"relative", "/v3/echo", "scheme"},
		{"unparsable", "https://127.0.0.1:" + f.port + "/v3/%zz", "not a URL"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "no egress grant"},
		{"numeric host", "https://2130706433:" + f.port + "/v3/echo", "dotted-decimal"},
		{"mapped host", "https://[::ffff:127.0.0.1]:" + f.port + "/v3/echo", "IPv4-mapped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.c.Do(t.Context(), grants, "GET", tt.url, nil, nil)
			wantDenied(t, err, tt.want)
		})
	}
	if n := f.up.hits.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests, want 0", n)
	}
}

func TestDoHTTPNeedsHTTPGrant(t *testing.T) {
	c := New(Config{Allow: allowLoopback})
	up := newUpstream()
	srv := startHTTP(t, up)
	p := port(t, srv)

	_, err := c.Do(t.Context(), prefixes(t, "https://127.0.0.1:"+p+"/v3/"), "GET", srv.URL+"/v3/echo", nil, nil)
	wantDenied(t, err, "no egress grant")
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests, want 0", n)
	}

	resp, err := c.Do(t.Context(), prefixes(t, "http://127.0.0.1:"+p+"/v3/"), "GET", srv.URL+"/v3/echo", nil, nil)
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("Do = %v, %v, want 201", resp, err)
	}
}

// TestDoLoopbackNeedsLiteralGrant shows that the address check is made on
// the address dialled: a grant for "localhost" passes the prefix check,
// then the dial to 127.0.0.1 is refused, since only a grant naming
// 127.0.0.1 itself reaches it.
func TestDoLoopbackNeedsLiteralGrant(t *testing.T) {
	f := newFixture(t, Config{})
	localhost := "https://localhost:" + f.port

	resp, err := f.c.Do(t.Context(), prefixes(t, f.base+"/"), "GET", f.base+"/v3/echo", nil, nil)
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("Do with a 127.0.0.1 grant = %v, %v, want 201", resp, err)
	}
	before := f.up.hits.Load()

	tests := []struct {
		name   string
		grants []string
		url    string
		want   string
	}{
		{"name resolving to loopback", []string{localhost + "/"}, localhost + "/v3/echo", "resolves to"},
		{"name, with a literal grant too", []string{localhost + "/", f.base + "/"}, localhost + "/v3/echo", "resolves to"},
		{"literal on another port", []string{"https://127.0.0.1:1/"}, f.base + "/v3/echo", "no egress grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.c.Do(t.Context(), prefixes(t, tt.grants...), "GET", tt.url, nil, nil)
			d := wantDenied(t, err, tt.want)
			if strings.HasPrefix(tt.url, localhost) && d.Target != localhost+"/v3/echo" {
				t.Errorf("DeniedError.Target = %q, want %q", d.Target, localhost+"/v3/echo")
			}
		})
	}
	if n := f.up.hits.Load(); n != before {
		t.Fatalf("upstream saw %d more requests, want 0", n-before)
	}
}

// TestDoPooledConnectionNotShared checks that a connection kept from a
// granted call does not serve a call without the grant.
func TestDoPooledConnectionNotShared(t *testing.T) {
	f := newFixture(t, Config{})
	if _, err := f.c.Do(t.Context(), prefixes(t, f.base+"/"), "GET", f.base+"/v3/echo", nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.c.Do(t.Context(), prefixes(t, "https://localhost:"+f.port+"/"), "GET", "https://localhost:"+f.port+"/v3/echo", nil, nil)
	wantDenied(t, err, "resolves to")
	_, err = f.c.Do(t.Context(), prefixes(t, "https://mail.example.net/"), "GET", f.base+"/v3/echo", nil, nil)
	wantDenied(t, err, "no egress grant")
	if n := f.up.hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
}

// TestDoMetadataNotDialled checks that a metadata URL no grant names is
// refused before any socket is opened.
func TestDoMetadataNotDialled(t *testing.T) {
	c := New(Config{})
	c.dialer.ControlContext = func(context.Context, string, string, syscall.RawConn) error {
		t.Error("a dial was attempted")
		return errors.New("test: no dial")
	}
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://100.100.100.200/latest/meta-data/",
		"http://169.254.170.2/v2/credentials",
	} {
		_, err := c.Do(t.Context(), prefixes(t, "https://mail.example.net/v3/"), "GET", u, nil, nil)
		wantDenied(t, err, "no egress grant covers it")
	}
}

func TestDoRedirects(t *testing.T) {
	f := newFixture(t, Config{MaxRedirects: 3})
	plainUp := newUpstream()
	plain := startHTTP(t, plainUp)
	httpsOnly := prefixes(t, f.base+"/v3/")
	withHTTP := prefixes(t, f.base+"/v3/", plain.URL+"/v3/")
	redirect := func(to string) string { return f.base + "/v3/redirect?to=" + url.QueryEscape(to) }

	t.Run("within the prefix", func(t *testing.T) {
		resp, err := f.c.Do(t.Context(), httpsOnly, "GET", redirect("/v3/echo"), nil, nil)
		if err != nil || resp.Status != http.StatusCreated || string(resp.Body) != "GET " {
			t.Fatalf("Do = %v, %v, want 201 \"GET \"", resp, err)
		}
	})
	t.Run("307 keeps the body", func(t *testing.T) {
		resp, err := f.c.Do(t.Context(), httpsOnly, "POST", redirect("/v3/echo")+"&code=307", nil, []byte("hi"))
		if err != nil || string(resp.Body) != "POST hi" {
			t.Fatalf("Do = %v, %v, want \"POST hi\"", resp, err)
		}
	})
	t.Run("outside the path", func(t *testing.T) {
		_, err := f.c.Do(t.Context(), httpsOnly, "GET", redirect("/admin/"), nil, nil)
		d := wantDenied(t, err, "no egress grant")
		if d.Target != f.base+"/admin/" {
			t.Errorf("DeniedError.Target = %q, want the redirect's target", d.Target)
		}
		if n := f.up.admin.Load(); n != 0 {
			t.Errorf("upstream served /admin/ %d times", n)
		}
	})
	t.Run("dot-segment", func(t *testing.T) {
		_, err := f.c.Do(t.Context(), httpsOnly, "GET", redirect("/v3/%2e%2e/admin/"), nil, nil)
		wantDenied(t, err, "dot-segment")
	})
	t.Run("unlisted host", func(t *testing.T) {
		_, err := f.c.Do(t.Context(), httpsOnly, "GET", redirect("https://evil.example/v3/echo?token=SECRET"), nil, nil)
		d := wantDenied(t, err, "https://evil.example/v3/echo")
		if strings.Contains(d.Error(), "SECRET") {
			t.Errorf("error %q shows the query", d.Error())
		}
	})
	t.Run("metadata", func(t *testing.T) {
		_, err := f.c.Do(t.Context(), httpsOnly, "GET", redirect("http://169.254.169.254/latest/meta-data/"), nil, nil)
		wantDenied(t, err, "no egress grant")
	})
	t.Run("name resolving to loopback", func(t *testing.T) {
		grants := prefixes(t, f.base+"/v3/", "https://localhost:"+f.port+"/v3/")
		_, err := f.c.Do(t.Context(), grants, "GET", redirect("https://localhost:"+f.port+"/v3/echo"), nil, nil)
		wantDenied(t, err, "resolves to")
	})
	t.Run("downgrade to http", func(t *testing.T) {
		_, err := f.c.Do(t.Context(), httpsOnly, "GET", redirect(plain.URL+"/v3/echo"), nil, nil)
		wantDenied(t, err, "no egress grant")
		if n := plainUp.hits.Load(); n != 0 {
			t.Fatalf("http upstream saw %d requests, want 0", n)
		}
	})
	t.Run("downgrade with an http grant", func(t *testing.T) {
		resp, err := f.c.Do(t.Context(), withHTTP, "GET", redirect(plain.URL+"/v3/echo"), nil, nil)
		if err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("Do = %v, %v, want 201", resp, err)
		}
	})
	t.Run("too many", func(t *testing.T) {
		before := f.up.loops.Load()
		_, err := f.c.Do(t.Context(), httpsOnly, "GET", f.base+"/v3/loop", nil, nil)
		if !errors.Is(err, ErrTooManyRedirects) {
			t.Fatalf("Do error = %v, want ErrTooManyRedirects", err)
		}
		if n := f.up.loops.Load() - before; n != 4 {
			t.Fatalf("upstream saw %d requests, want 4 (the first and 3 redirects)", n)
		}
	})
	t.Run("not followed", func(t *testing.T) {
		c := New(Config{RootCAs: f.ca.pool, MaxRedirects: -1, Allow: allowLoopback})
		resp, err := c.Do(t.Context(), httpsOnly, "GET", redirect("https://evil.example/"), nil, nil)
		if err != nil || resp.Status != http.StatusFound || resp.Header.Get("Location") != "https://evil.example/" {
			t.Fatalf("Do = %v, %v, want the 302 itself", resp, err)
		}
	})
}

// TestDoRedirectKeepsCredentialsInOrigin checks that Authorization and
// Cookie follow a redirect within one origin and are dropped across
// origins, even when both are granted.
func TestDoRedirectKeepsCredentialsInOrigin(t *testing.T) {
	f := newFixture(t, Config{})
	other := newUpstream()
	srvB := startTLS(t, f.ca.goodCert(t), nil, other)
	grants := prefixes(t, f.base+"/v3/", srvB.URL+"/v3/")
	h := http.Header{"Authorization": {"Bearer s3cret"}, "Cookie": {"session=1"}, "X-Plain": {"kept"}}

	if _, err := f.c.Do(t.Context(), grants, "GET", f.base+"/v3/redirect?to=/v3/echo", h, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.up.lastHeader(); got.Get("Authorization") == "" || got.Get("Cookie") == "" {
		t.Errorf("same-origin redirect lost credentials: %v", got)
	}

	to := url.QueryEscape(srvB.URL + "/v3/echo")
	if _, err := f.c.Do(t.Context(), grants, "GET", f.base+"/v3/redirect?to="+to, h, nil); err != nil {
		t.Fatal(err)
	}
	got := other.lastHeader()
	if got.Get("Authorization") != "" || got.Get("Cookie") != "" {
		t.Errorf("cross-origin redirect kept credentials: %v", got)
	}
	if got.Get("X-Plain") != "kept" {
		t.Errorf("cross-origin redirect lost X-Plain: %v", got)
	}
}

func TestDoRefusesBadCertificates(t *testing.T) {
	ca := newTestCA(t, "trusted")
	otherCA := newTestCA(t, "untrusted")
	now := time.Now()
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	tests := []struct {
		name  string
		cert  tls.Certificate
		tls   *tls.Config
		check func(error) bool
	}{
		{"unknown authority", otherCA.goodCert(t), nil, func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{"expired", ca.issue(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), []string{"localhost"}, loopback), nil, func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
		{"not yet valid", ca.issue(t, now.Add(time.Hour), now.Add(2*time.Hour), []string{"localhost"}, loopback), nil, func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
		{"wrong host", ca.issue(t, now.Add(-time.Hour), now.Add(time.Hour), []string{"other.example"}, nil), nil, func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e)
		}},
		{"TLS 1.1", ca.goodCert(t), &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, func(err error) bool {
			return strings.Contains(err.Error(), "protocol version")
		}},
	}
	c := New(Config{RootCAs: ca.pool, Allow: allowLoopback})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream()
			srv := startTLS(t, tt.cert, tt.tls, up)
			_, err := c.Do(t.Context(), prefixes(t, srv.URL+"/"), "GET", srv.URL+"/v3/echo", nil, nil)
			if err == nil {
				t.Fatal("Do succeeded, want a certificate error")
			}
			var d *DeniedError
			if errors.As(err, &d) || errors.Is(err, ErrTimeout) {
				t.Fatalf("Do error = %v, want a TLS failure", err)
			}
			if !tt.check(err) {
				t.Fatalf("Do error = %v (%T), not the failure wanted", err, errors.Unwrap(err))
			}
			if n := up.hits.Load(); n != 0 {
				t.Fatalf("upstream saw %d requests, want 0", n)
			}
		})
	}
}

func TestDoResponseTooLarge(t *testing.T) {
	f := newFixture(t, Config{MaxResponse: 1000})
	grants := prefixes(t, f.base+"/v3/")
	tests := []struct {
		path    string
		tooLong bool
	}{
		{"/v3/big?n=1000", false},
		{"/v3/big?n=1001", true},
		{"/v3/big?n=100000", true},
		{"/v3/stream?n=1000", false},
		{"/v3/stream?n=1001", true},
		{"/v3/stream?n=100000", true},
	}
	for _, tt := range tests {
		resp, err := f.c.Do(t.Context(), grants, "GET", f.base+tt.path, nil, nil)
		switch {
		case tt.tooLong && !errors.Is(err, ErrResponseTooLarge):
			t.Errorf("Do(%s) error = %v, want ErrResponseTooLarge", tt.path, err)
		case !tt.tooLong && err != nil:
			t.Errorf("Do(%s): %v", tt.path, err)
		case !tt.tooLong && len(resp.Body) != 1000:
			t.Errorf("Do(%s) body is %d bytes, want 1000", tt.path, len(resp.Body))
		}
	}
}

func TestDoTimeout(t *testing.T) {
	f := newFixture(t, Config{Timeout: 300 * time.Millisecond})
	grants := prefixes(t, f.base+"/v3/")
	for _, path := range []string{"/v3/slow", "/v3/slowbody", "/v3/slow?token=SECRET"} {
		start := time.Now()
		_, err := f.c.Do(t.Context(), grants, "GET", f.base+path, nil, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Do(%s) error = %v, want ErrTimeout", path, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Do(%s) took %s, want about 300ms", path, took)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("Do(%s) error %q shows the query", path, err)
		}
	}

	t.Run("context deadline", func(t *testing.T) {
		c := New(Config{RootCAs: f.ca.pool, Allow: allowLoopback})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		_, err := c.Do(ctx, grants, "GET", f.base+"/v3/slow", nil, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Do error = %v, want ErrTimeout", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		c := New(Config{RootCAs: f.ca.pool, Allow: allowLoopback})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := c.Do(ctx, grants, "GET", f.base+"/v3/slow", nil, nil)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("Do error = %v, want context.Canceled", err)
		}
	})
}

func TestDoRequestChecks(t *testing.T) {
	f := newFixture(t, Config{MaxRequest: 16})
	grants := prefixes(t, f.base+"/v3/")
	echo := f.base + "/v3/echo"
	tests := []struct {
		name   string
		method string
		header http.Header
		body   string
		want   error // nil means a *DeniedError
	}{
		{"empty method", "", nil, "", ErrInvalidRequest},
		{"method with a space", "GE T", nil, "", ErrInvalidRequest},
		{"method with CRLF", "GET\r\nX: y", nil, "", ErrInvalidRequest},
		{"CONNECT", "CONNECT", nil, "", ErrInvalidRequest},
		{"header name", "GET", http.Header{"Bad Name": {"x"}}, "", ErrInvalidRequest},
		{"header value CRLF", "GET", http.Header{"X-A": {"a\r\nX-Injected: 1"}}, "", ErrInvalidRequest},
		{"header value NUL", "GET", http.Header{"X-A": {"a\x00"}}, "", ErrInvalidRequest},
		{"Host", "GET", http.Header{"Host": {"evil.example"}}, "", nil},
		{"host, lower case", "GET", http.Header{"host": {"evil.example"}}, "", nil},
		{"body too large", "POST", nil, strings.Repeat("x", 17), ErrRequestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.c.Do(t.Context(), grants, tt.method, echo, tt.header, []byte(tt.body))
			if tt.want == nil {
				wantDenied(t, err, "Host")
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Do error = %v, want %v", err, tt.want)
			}
		})
	}
	if n := f.up.hits.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests, want 0", n)
	}

	t.Run("hop-by-hop dropped", func(t *testing.T) {
		h := http.Header{
			"Connection":          {"X-Drop"},
			"X-Drop":              {"1"},
			"Keep-Alive":          {"300"},
			"Proxy-Authorization": {"Basic c2VjcmV0"},
			"Proxy-Connection":    {"keep-alive"},
			"Te":                  {"trailers"},
			"Trailer":             {"X-T"},
			"Upgrade":             {"websocket"},
			"Transfer-Encoding":   {"chunked"},
			"Content-Length":      {"999"},
			"X-Keep":              {"1"},
		}
		resp, err := f.c.Do(t.Context(), grants, "POST", echo, h, []byte("sixteen bytes..."))
		if err != nil || string(resp.Body) != "POST sixteen bytes..." {
			t.Fatalf("Do = %v, %v, want \"POST sixteen bytes...\"", resp, err)
		}
		got := f.up.lastHeader()
		if v := got.Get("Content-Length"); v != "16" {
			t.Errorf("upstream saw Content-Length: %s, want 16, the body's", v)
		}
		for k := range h {
			if k == "X-Keep" || k == "Content-Length" {
				continue
			}
			if v := got.Get(k); v != "" {
				t.Errorf("upstream saw %s: %s", k, v)
			}
		}
		if got.Get("X-Keep") != "1" {
			t.Errorf("upstream lost X-Keep: %v", got)
		}
	})
}

func TestDoHidesQueryInErrors(t *testing.T) {
	c := New(Config{})
	_, err := c.Do(t.Context(), nil, "GET", "https://user:pw@evil.example/x?token=SECRET#frag", nil, nil)
	d := wantDenied(t, err, "evil.example/x")
	for _, s := range []string{"SECRET", "pw", "frag"} {
		if strings.Contains(d.Error(), s) {
			t.Errorf("error %q shows %q", d.Error(), s)
		}
	}
}
