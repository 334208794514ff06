// Command contact takes a prospect's request for a personalised catalog:
// it stores the contact (write-only) and publishes the request as the
// event catalog.requested, which send-catalog renders and mails, with
// retries, while the prospect already has an answer. It holds no secret
// and reaches nothing outside: a public function with the least it needs.
// The node has already refused anything that does not match
// contact.schema.json.
package main

import (
	"encoding/json"
	"net/http"
	"net/http/cgi"
	"time"

	"github.com/moatfn/moat/sdk/fn"
)

// Request is the form, as contact.schema.json allows it.
type Request struct {
	Name        string       `json:"name"`
	Email       string       `json:"email"`
	Preferences []Preference `json:"preferences"`
}

// Preference is one colour and size the prospect likes.
type Preference struct {
	Colour string `json:"colour"`
	Size   string `json:"size"`
}

var log = fn.Logger()

func handle(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	contact, _ := json.Marshal(map[string]any{"name": req.Name, "email": req.Email, "preferences": req.Preferences, "at": time.Now().UTC()})
	if _, err := fn.KV("contacts").Put(req.Email, contact); err != nil {
		fail(w, "store the contact", err)
		return
	}
	event, _ := json.Marshal(req)
	id, err := fn.Publish("catalog.requested", "com.example.widgets.catalog.requested", "application/json", event)
	if err != nil {
		fail(w, "queue the catalog", err)
		return
	}
	log.Info("catalog requested", "event", id)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"status": "queued", "id": id})
}

// fail logs what went wrong and tells the caller only that it did.
func fail(w http.ResponseWriter, what string, err error) {
	log.Error("could not "+what, "err", err.Error())
	http.Error(w, "sorry, we could not take your request; try again later", http.StatusServiceUnavailable)
}

func main() { cgi.Serve(http.HandlerFunc(handle)) }
