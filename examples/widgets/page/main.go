// Command page serves the widget catalog's form: a static page and its
// script, under a strict Content-Security-Policy. The form posts JSON to
// /fn/contact.
package main

import (
	_ "embed"
	"net/http"
	"net/http/cgi"
)

//go:embed index.html
var index []byte

//go:embed app.js
var app []byte

func handle(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	switch r.URL.Path {
	case "", "/":
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(index)
	case "/app.js":
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(app)
	default:
		http.NotFound(w, r)
	}
}

func main() { cgi.Serve(http.HandlerFunc(handle)) }
