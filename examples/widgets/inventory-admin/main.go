// Command inventory-admin lets staff set and read the stock of each widget:
// PUT /COLOUR/SIZE with {"stock":N,"price":"9.90 EUR"}, GET / for all.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"regexp"
	"strings"

	"github.com/moatfn/moat/sdk/fn"
)

var item = regexp.MustCompile(`^/(red|green|blue|yellow|black|white)/(tiny|small|big|huge)$`)

// Stock is one widget's record.
type Stock struct {
	Stock int    `json:"stock"`
	Price string `json:"price"`
}

func handle(w http.ResponseWriter, r *http.Request) {
	inventory := fn.KV("inventory")
	switch r.Method {
	case http.MethodPut:
		if !item.MatchString(r.URL.Path) {
			http.Error(w, "PUT /COLOUR/SIZE", http.StatusNotFound)
			return
		}
		var s Stock
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil || s.Stock < 0 || len(s.Price) > 20 {
			http.Error(w, `want {"stock":N,"price":"..."}`, http.StatusBadRequest)
			return
		}
		b, _ := json.Marshal(s)
		if _, err := inventory.Put(strings.TrimPrefix(r.URL.Path, "/"), b); err != nil {
			fmt.Fprintln(os.Stderr, "put:", err)
			http.Error(w, "could not store", http.StatusServiceUnavailable)
			return
		}
		fn.Logger().Info("stock set", "item", r.URL.Path, "stock", s.Stock, "by", os.Getenv("REMOTE_USER"))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		keys, err := inventory.Keys("")
		if err != nil {
			http.Error(w, "could not read", http.StatusServiceUnavailable)
			return
		}
		out := map[string]Stock{}
		for _, k := range keys {
			v, _, err := inventory.Get(k)
			var s Stock
			if err == nil && json.Unmarshal(v, &s) == nil {
				out[k] = s
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	default:
		http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
	}
}

func main() { cgi.Serve(http.HandlerFunc(handle)) }
