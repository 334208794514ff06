// Package problem writes RFC 9457 problem documents, the body of every error
// the node answers with.
package problem

import (
	"encoding/json"
	"net/http"
)

// Write answers with status and a problem document of title and detail.
// invocationID, if not "", is added as "invocation_id".
func Write(w http.ResponseWriter, status int, title, detail, invocationID string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	doc := struct {
		Type         string `json:"type"`
		Title        string `json:"title"`
		Status       int    `json:"status"`
		Detail       string `json:"detail,omitempty"`
		InvocationID string `json:"invocation_id,omitempty"`
	}{"about:blank", title, status, detail, invocationID}
	json.NewEncoder(w).Encode(doc)
}
