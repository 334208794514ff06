package fn

import (
	"net/http"
	"os"
	"strings"
)

// An Event is the CloudEvent an invocation carries, as Moat delivers it in
// the HTTP binding's binary mode: the attributes in ce-* headers, the data
// as the request body.
type Event struct {
	ID, Source, SpecVersion, Type string
	Subject, Time, DataSchema     string
	DataContentType               string            // the request's Content-Type
	Extensions                    map[string]string // the other ce-* attributes, by lower-case name
}

// ReadEvent returns the CloudEvent of req, and false for a request that
// carries none (no ce-id header). Moat checked the attributes before the
// function ran: they are decoded, valid UTF-8, without control characters.
// The data is req's body.
//
// Trigger tells who brought it: an event Moat delivered from a queue is
// "queue"; a plain HTTP request with ce-* headers is "http".
func ReadEvent(req *http.Request) (*Event, bool) {
	h := req.Header
	if h.Get("Ce-Id") == "" {
		return nil, false
	}
	e := &Event{
		ID: h.Get("Ce-Id"), Source: h.Get("Ce-Source"), SpecVersion: h.Get("Ce-Specversion"), Type: h.Get("Ce-Type"),
		Subject: h.Get("Ce-Subject"), Time: h.Get("Ce-Time"), DataSchema: h.Get("Ce-Dataschema"),
		DataContentType: h.Get("Content-Type"),
	}
	for k, vs := range h {
		name, ok := strings.CutPrefix(strings.ToLower(k), "ce-")
		if !ok || len(vs) == 0 {
			continue
		}
		switch name {
		case "id", "source", "specversion", "type", "subject", "time", "dataschema":
			continue
		}
		if e.Extensions == nil {
			e.Extensions = map[string]string{}
		}
		e.Extensions[name] = vs[0]
	}
	return e, true
}

// Trigger is what brought this invocation: "http" (a request to
// /fn/NAME), "fn" (another function's call), "queue" (an event on a
// subject), "schedule" or "replay" (a dead letter sent again).
func Trigger() string { return os.Getenv("MOAT_TRIGGER") }

// Publish publishes an event on subject, for the functions whose queue
// triggers take it, and returns the event's id. The manifest must grant
// the subject (permissions.publish), or Publish fails with ErrDenied; a
// subject no function takes fails with ErrNotFound, so an event nobody
// would handle is never kept. typ is the CloudEvent type ("" is the
// subject), contentType the data's media type ("" for none).
//
// The functions that take the event see this function first in
// REMOTE_USER (fn:NAME), then whoever called it.
func Publish(subject, typ, contentType string, data []byte) (string, error) {
	return publish(nil, subject, typ, contentType, data)
}

func publish(host caller, subject, typ, contentType string, data []byte) (string, error) {
	req := appendString(nil, subject)
	req = appendString(req, typ)
	req = appendString(req, contentType)
	req = appendBytes(req, data)
	reply, err := host.call(opPublish, req)
	if err != nil {
		return "", err
	}
	id, err := decodeString(reply)
	if err != nil {
		return "", malformed(opPublish, err)
	}
	return id, nil
}
