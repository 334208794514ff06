package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/moatfn/moat/internal/bundle"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/testwasm"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "moat test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// server starts an HTTPS server on 127.0.0.1 with a certificate from ca for
// 127.0.0.1 and localhost.
func (ca *testCA) server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestEgressGrants(t *testing.T) {
	ca := newTestCA(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi from the mail API") })
	var api *httptest.Server
	mux.HandleFunc("/ok/in", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok/hello", http.StatusFound) })
	mux.HandleFunc("/ok/out", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "should never be reached") })
	api = ca.server(t, mux)
	rogue := newTestCA(t).server(t, mux) // a certificate nobody trusts

	data := t.TempDir()
	caFile := filepath.Join(data, "egress-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNodeConfig(t, Config{DataDir: data, EgressCAFile: caFile, EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	wasm := testwasm.Bytes(t, "caps")
	apiURL, _ := url.Parse(api.URL)
	rogueURL, _ := url.Parse(rogue.URL)
	deploy(t, n, capsManifest("mail", fmt.Sprintf("permissions: {egress: [\"%s/ok/\", \"%s/ok/\"]}\n", api.URL, rogue.URL)), wasm)
	// The operator draws the boundary: a grant reaching where the node does
	// not allow is refused at deploy, naming the flag that would allow it.
	for grant, want := range map[string]string{
		"https://localhost:" + apiURL.Port() + "/ok/": "loopback name",
		"http://169.254.169.254/latest/":              "cloud metadata address",
		"https://127.0.0.2:" + apiURL.Port() + "/ok/": "--egress-allow 127.0.0.2/32",
		"https://10.0.0.1/":                           "private address",
		"http://[::1]/":                               "loopback address",
	} {
		b, err := bundle.Read(functionDir(t, capsManifest("bad-egress", fmt.Sprintf("permissions: {egress: [%q]}\n", grant)), wasm))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.client.Deploy(context.Background(), b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("deploy granting %s: %v, want a refusal naming %q", grant, err, want)
		}
	}
	deploy(t, n, capsManifest("nogrant", ""), wasm)
	get := func(fn, u string) capsResult { return caps(t, n, fn, "/http", url.Values{"url": {u}}) }

	r := get("mail", api.URL+"/ok/hello")
	wantCode(t, "granted", r, 0)
	if r.Status != http.StatusOK || r.Value != "hi from the mail API" {
		t.Fatalf("granted call: %+v", r)
	}
	if r := get("mail", api.URL+"/ok/in"); r.Status != http.StatusOK || r.Value != "hi from the mail API" {
		t.Fatalf("redirect within the grant: %+v", r)
	}
	// Metered: the two answers' bytes, at least.
	n.usage.Flush(context.Background())
	rows, err := n.client.Usage(context.Background(), "mail", "")
	if err != nil || len(rows) == 0 || rows[0].EgressBytes < 2*int64(len("hi from the mail API")) {
		t.Fatalf("usage of mail: %+v %v", rows, err)
	}
	for _, c := range []struct{ name, fn, url string }{
		{"outside the path prefix", "mail", api.URL + "/other"},
		{"dot segments", "mail", api.URL + "/ok/../other"},
		{"plain http", "mail", "http://" + apiURL.Host + "/ok/hello"},
		{"cloud metadata", "mail", "http://169.254.169.254/latest/meta-data/"},
		{"redirect to metadata", "mail", api.URL + "/ok/out"},
		{"no grant", "nogrant", api.URL + "/ok/hello"},
		{"an allowed address on a name that resolves to it", "mail", "https://localhost:" + apiURL.Port() + "/ok/hello"},
	} {
		if r := get(c.fn, c.url); r.Code != codeDenied {
			t.Errorf("%s: %+v, want denied", c.name, r)
		}
	}
	// A certificate the node does not trust: refused, not denied by policy.
	if r := get("mail", "https://"+rogueURL.Host+"/ok/hello"); r.OK || r.Code == 0 || r.Code == codeDenied {
		t.Errorf("untrusted certificate: %+v", r)
	}
}
