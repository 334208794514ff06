// Package mailer is a local stand-in for an HTTPS mail API, for the widget
// catalog example: it serves POST /v3/send over TLS with a certificate from
// a CA of its own, checks the API key, and keeps what it is sent in an
// inbox that a browser can read over plain HTTP on loopback. An outage can
// be staged: POST /outage on the inbox makes the API answer 503 until
// DELETE /outage.
package mailer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message is one mail the API accepted.
type Message struct {
	ID         int       `json:"id"`
	At         time.Time `json:"at"`
	To         string    `json:"to"`
	Subject    string    `json:"subject"`
	Text       string    `json:"text"`
	Attachment []byte    `json:"attachment,omitempty"` // the catalog PDF
}

// Server is a running stand-in.
type Server struct {
	// API is the base URL of the mail API, like https://127.0.0.1:8443.
	API string
	// Inbox is where a browser reads what was sent, like http://127.0.0.1:8025.
	Inbox string
	// CAFile holds the CA that signed the API's certificate (PEM).
	CAFile string

	key      string
	down     atomic.Bool // an outage: the API answers 503
	mu       sync.Mutex
	messages []Message
	api      *http.Server
	inbox    *http.Server
}

// Start serves the API on apiAddr and the inbox on inboxAddr (both should
// be loopback; ":0" ports are fine), accepting key as the API key, and
// writes the CA to dir/mailer-ca.pem.
func Start(apiAddr, inboxAddr, dir, key string) (*Server, error) {
	if key == "" {
		return nil, errors.New("mailer: no API key")
	}
	ca, cert, err := certificates()
	if err != nil {
		return nil, err
	}
	s := &Server{key: key, CAFile: filepath.Join(dir, "mailer-ca.pem")}
	if err := os.WriteFile(s.CAFile, ca, 0o644); err != nil {
		return nil, err
	}
	apiLn, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return nil, fmt.Errorf("mailer api: %w", err)
	}
	inboxLn, err := net.Listen("tcp", inboxAddr)
	if err != nil {
		apiLn.Close()
		return nil, fmt.Errorf("mailer inbox: %w", err)
	}
	s.API = "https://" + apiLn.Addr().String()
	s.Inbox = "http://" + inboxLn.Addr().String()
	api := http.NewServeMux()
	api.HandleFunc("POST /v3/send", s.send)
	s.api = &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	inbox := http.NewServeMux()
	inbox.HandleFunc("GET /{$}", s.list)
	inbox.HandleFunc("GET /messages.json", s.listJSON)
	inbox.HandleFunc("GET /messages/{id}/catalog.pdf", s.attachment)
	inbox.HandleFunc("POST /outage", func(w http.ResponseWriter, r *http.Request) { s.SetDown(true); fmt.Fprintln(w, "the mail API is down") })
	inbox.HandleFunc("DELETE /outage", func(w http.ResponseWriter, r *http.Request) {
		s.SetDown(false)
		fmt.Fprintln(w, "the mail API is back")
	})
	s.inbox = &http.Server{Handler: inbox, ReadHeaderTimeout: 5 * time.Second}
	go s.api.ServeTLS(apiLn, "", "")
	go s.inbox.Serve(inboxLn)
	return s, nil
}

// Close stops both servers.
func (s *Server) Close() error { return errors.Join(s.api.Close(), s.inbox.Close()) }

// SetDown stages an outage of the API (true) or ends it.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Messages returns what was sent so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

type sendRequest struct {
	To         string `json:"to"`
	Subject    string `json:"subject"`
	Text       string `json:"text"`
	Attachment string `json:"attachment"` // base64
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, `{"error":"the mail service is unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.key)) != 1 {
		http.Error(w, `{"error":"invalid API key"}`, http.StatusUnauthorized)
		return
	}
	var req sendRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&req); err != nil || req.To == "" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	pdf, err := base64.StdEncoding.DecodeString(req.Attachment)
	if err != nil {
		http.Error(w, `{"error":"attachment is not base64"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	m := Message{ID: len(s.messages) + 1, At: time.Now().UTC(), To: req.To, Subject: req.Subject, Text: req.Text, Attachment: pdf}
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"id":%d,"status":"queued"}`, m.ID)
}

var page = template.Must(template.New("inbox").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mail stand-in: inbox</title>
<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}article{border-bottom:1px solid #ccc;padding:1em 0}pre{white-space:pre-wrap}</style></head>
<body><h1>Inbox of the mail stand-in</h1>
{{range .}}<article><h2>{{.Subject}}</h2><p>To {{.To}}, {{.At.Format "2006-01-02 15:04:05 UTC"}}</p><pre>{{.Text}}</pre>
{{if .Attachment}}<p><a href="/messages/{{.ID}}/catalog.pdf">catalog.pdf</a> ({{len .Attachment}} bytes)</p>{{end}}</article>
{{else}}<p>No mail yet.</p>{{end}}</body></html>`))

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	page.Execute(w, s.Messages())
}

func (s *Server) listJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Messages())
}

func (s *Server) attachment(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	msgs := s.Messages()
	if id < 1 || id > len(msgs) || msgs[id-1].Attachment == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Write(msgs[id-1].Attachment)
}

// certificates makes a CA and a certificate for 127.0.0.1 and localhost.
func certificates() ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Moat example mail stand-in CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, 30),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, 30),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
