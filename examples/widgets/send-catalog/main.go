// Command send-catalog handles the event catalog.requested that contact
// publishes: it reads the stock (read-only), has catalog-pdf render the
// matching in-stock widgets, and mails the PDF through the mail API with
// the MAILER_KEY secret. The node has already refused any event that does
// not match request.schema.json. A failure answers 503, so the event is
// tried again later; a catalog sent is remembered by the event's id, so a
// redelivered event does not mail twice.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"time"

	"github.com/moatfn/moat/sdk/fn"
)

// Request is the prospect's request, as request.schema.json allows it.
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

// Stock is an inventory record, as inventory-admin writes it.
type Stock struct {
	Stock int    `json:"stock"`
	Price string `json:"price"`
}

// Widget is what catalog-pdf renders.
type Widget struct {
	Colour string `json:"colour"`
	Size   string `json:"size"`
	Stock  int    `json:"stock"`
	Price  string `json:"price"`
}

var log = fn.Logger()

func handle(w http.ResponseWriter, r *http.Request) {
	ev, ok := fn.ReadEvent(r)
	if !ok {
		http.Error(w, "send-catalog takes events only", http.StatusBadRequest) // dead-lettered: not worth a retry
		return
	}
	sent := fn.KV("catalogs-sent")
	if _, _, err := sent.Get(ev.ID); err == nil {
		log.Info("catalog already sent", "event", ev.ID)
		return // a redelivery of an event already handled
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	widgets, err := inStock(req.Preferences)
	if err != nil {
		fail(w, "read the inventory", err)
		return
	}
	body, _ := json.Marshal(map[string]any{"name": req.Name, "widgets": widgets})
	resp, err := fn.Call("catalog-pdf", "POST", "/", body, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		fail(w, "render the catalog", err)
		return
	}
	pdf, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fail(w, "render the catalog", fmt.Errorf("catalog-pdf answered %d", resp.StatusCode))
		return
	}
	if err := mail(req, len(widgets), pdf); err != nil {
		fail(w, "send the mail", err)
		return
	}
	if _, err := sent.PutTTL(ev.ID, []byte(time.Now().UTC().Format(time.RFC3339)), 7*24*time.Hour); err != nil {
		log.Warn("could not remember the catalog as sent", "err", err.Error())
	}
	log.Info("catalog sent", "event", ev.ID, "widgets", len(widgets), "pdf_bytes", len(pdf))
}

// inStock is the preferences that have widgets in stock.
func inStock(prefs []Preference) ([]Widget, error) {
	var widgets []Widget
	inventory := fn.KV("inventory")
	for _, p := range prefs {
		v, _, err := inventory.Get(p.Colour + "/" + p.Size)
		if errors.Is(err, fn.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var s Stock
		if json.Unmarshal(v, &s) == nil && s.Stock > 0 {
			widgets = append(widgets, Widget{Colour: p.Colour, Size: p.Size, Stock: s.Stock, Price: s.Price})
		}
	}
	return widgets, nil
}

func mail(req Request, n int, pdf []byte) error {
	key, err := fn.Secret("MAILER_KEY")
	if err != nil {
		return err
	}
	msg, _ := json.Marshal(map[string]string{
		"to":         req.Email,
		"subject":    "Your widget catalog",
		"text":       fmt.Sprintf("Dear %s,\n\nthank you for your interest in our widgets: the %d in stock that match your wishes are in the attached catalog.\n", req.Name, n),
		"attachment": base64.StdEncoding.EncodeToString(pdf),
	})
	r, err := http.NewRequest("POST", os.Getenv("MAIL_API")+"/v3/send", bytes.NewReader(msg))
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+key)
	r.Header.Set("Content-Type", "application/json")
	resp, err := fn.HTTPClient().Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("the mail API answered %d", resp.StatusCode)
	}
	return nil
}

// fail logs what went wrong and answers 503: the event comes back later.
func fail(w http.ResponseWriter, what string, err error) {
	log.Error("could not "+what, "err", err.Error())
	http.Error(w, "could not "+what, http.StatusServiceUnavailable)
}

func main() { cgi.Serve(http.HandlerFunc(handle)) }
