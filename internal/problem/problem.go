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
	WriteErrors(w, status, title, detail, invocationID, nil)
}

// WriteErrors is Write with a list of specific errors, as "errors".
func WriteErrors(w http.ResponseWriter, status int, title, detail, invocationID string, errs any) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	doc := struct {
		Type         string `json:"type"`
		Title        string `json:"title"`
		Status       int    `json:"status"`
		Detail       string `json:"detail,omitempty"`
		InvocationID string `json:"invocation_id,omitempty"`
		Errors       any    `json:"errors,omitempty"`
	}{"about:blank", title, status, detail, invocationID, errs}
	json.NewEncoder(w).Encode(doc)
}
