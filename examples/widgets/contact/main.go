// Command contact takes a prospect's request for a personalised catalog:
// it stores the contact (write-only), reads the stock (read-only), has
// catalog-pdf render the matching in-stock widgets, and mails the PDF
// through the mail API with the MAILER_KEY secret. The node has already
// refused anything that does not match contact.schema.json.
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
	var widgets []Widget
	inventory := fn.KV("inventory")
	for _, p := range req.Preferences {
		v, _, err := inventory.Get(p.Colour + "/" + p.Size)
		if errors.Is(err, fn.ErrNotFound) {
			continue
		}
		if err != nil {
			fail(w, "read the inventory", err)
			return
		}
		var s Stock
		if json.Unmarshal(v, &s) == nil && s.Stock > 0 {
			widgets = append(widgets, Widget{Colour: p.Colour, Size: p.Size, Stock: s.Stock, Price: s.Price})
		}
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
	log.Info("catalog sent", "widgets", len(widgets), "pdf_bytes", len(pdf))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "{\"status\":\"sent\",\"widgets\":%d}\n", len(widgets))
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

// fail logs what went wrong and tells the caller only that it did.
func fail(w http.ResponseWriter, what string, err error) {
	log.Error("could not "+what, "err", err.Error())
	http.Error(w, "sorry, we could not send your catalog; try again later", http.StatusServiceUnavailable)
}

func main() { cgi.Serve(http.HandlerFunc(handle)) }
