// Package greet is the hello example's handler, kept apart from main so that
// the benchmarks can serve the very same handler natively.
package greet

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Handler greets by name: GET ?name=NAME, or POST {"name":"NAME"}.
// It answers {"greeting":"hello, NAME"}.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		in.Name = r.URL.Query().Get("name")
	case http.MethodPost:
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		if err := dec.Decode(&in); err != nil {
			http.Error(w, `{"error":"body must be {\"name\":\"...\"}"}`, http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		in.Name = "world"
	}
	if len(in.Name) > 100 {
		in.Name = in.Name[:100]
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"greeting": "hello, " + in.Name})
}
