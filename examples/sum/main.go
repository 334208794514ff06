// Command sum is a Go function built as a reactor: JSON in, JSON out. It
// is the Go function of the benchmarks (bench/run), where the same handler
// runs natively in bench/bare and as JavaScript in workerd.
package main

import (
	"encoding/json"
	"net/http"

	"github.com/moatfn/moat/sdk/fn"
)

func init() { fn.HandleFunc(sum) }

// main serves one request when the function is built as a command instead.
func main() { fn.Main() }

func sum(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name  string    `json:"name"`
		Items []float64 `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	total := 0.0
	for _, v := range in.Items {
		total += v
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"hello": in.Name, "sum": total, "count": len(in.Items)})
}
