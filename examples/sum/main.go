// Command sum is a Go function built as a reactor: JSON in, JSON out. It
// is the Go function of the benchmarks (bench/run), where the same handler
// runs natively in bench/bare and as JavaScript in workerd.
package main

import (
	"encoding/json"
	"net/http"

	"github.com/moatfn/moat/sdk/fn"
)

// input and output are what the function reads and writes.
type input struct {
	Name  string    `json:"name"`
	Items []float64 `json:"items"`
}

type output struct {
	Hello string  `json:"hello"`
	Sum   float64 `json:"sum"`
	Count int     `json:"count"`
}

func init() {
	fn.HandleFunc(sum)
	// Built as a reactor, init runs once at deploy and every request
	// starts from what it leaves: encoding/json's caches of these two
	// types are then built once, not per request.
	var in input
	json.Unmarshal([]byte(`{"name":"","items":[0]}`), &in)
	json.Marshal(output{})
}

// main serves one request when the function is built as a command instead.
func main() { fn.Main() }

func sum(w http.ResponseWriter, r *http.Request) {
	var in input
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	total := 0.0
	for _, v := range in.Items {
		total += v
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(output{Hello: in.Name, Sum: total, Count: len(in.Items)})
}
