package api

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/moatfn/moat/internal/inventory"
	"github.com/moatfn/moat/internal/store"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/vulndb"
)

// NodeReport is the answer of GET /api/v1/node: what the node is built of
// and what the imported advisories say of it, as of a function.
type NodeReport struct {
	Version    string           `json:"version"` // the module version, or "(devel)"
	Commit     string           `json:"commit,omitempty"`
	Go         string           `json:"go"`
	Platform   string           `json:"platform"`
	Components int              `json:"components"`
	Database   vulndb.Status    `json:"database"`
	Findings   []supply.Finding `json:"findings"`
	// Store is the health of the store the node runs on; nil when it
	// could not be read (Problem says why).
	Store   *store.Health `json:"store,omitempty"`
	Problem string        `json:"store_problem,omitempty"`
}

// nodeReport answers GET /api/v1/node: the node's own build info, matched
// against the imported database like a function's.
func (a *API) nodeReport(w http.ResponseWriter, r *http.Request) {
	rep, err := a.selfReport(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.health != nil {
		if h, err := a.health(r.Context()); err != nil {
			rep.Problem = err.Error()
		} else {
			rep.Store = h
		}
	}
	writeJSON(w, http.StatusOK, rep)
}

// self is the node's own build: read once, it does not change.
var self = sync.OnceValues(func() (NodeReport, []inventory.Component) {
	rep := NodeReport{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return rep, nil
	}
	if bi.Main.Version != "" {
		rep.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			rep.Commit = s.Value
		}
	}
	inv, err := inventory.FromBuildInfo(bi)
	if err != nil {
		return rep, nil
	}
	rep.Components = len(inv.Components)
	return rep, inv.Components
})

func (a *API) selfReport(r *http.Request) (*NodeReport, error) {
	built, components := self()
	rep := &built
	rep.Findings = []supply.Finding{}
	if a.supply != nil {
		res, err := a.supply.scan(r.Context(), ScanRequest{Components: components})
		if err != nil {
			return nil, err
		}
		rep.Database = res.Database
		if res.Findings != nil {
			rep.Findings = res.Findings
		}
	}
	return rep, nil
}
