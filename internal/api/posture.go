package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/posture"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/supply"
)

// NodeFunction names the node itself in posture findings.
const NodeFunction = "(node)"

// PostureConfig is what the posture checks need of the node.
type PostureConfig struct {
	DormantAfter     time.Duration // 0 is 30 days
	RequireSignature bool
}

// postureOf answers GET /api/v1/posture?function=F: the findings of every
// function (or F's), most pressing first.
func (a *API) postureOf(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("function")
	if only != "" && !manifest.ValidName(only) {
		Problem(w, http.StatusBadRequest, "bad request", "function: not a function name")
		return
	}
	fns, err := a.fns.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := time.Now()
	opts := posture.Options{Now: now, DormantAfter: a.posture.DormantAfter}
	if opts.DormantAfter == 0 {
		opts.DormantAfter = 30 * 24 * time.Hour
	}
	calledBy := map[string][]string{}
	for _, f := range fns {
		if v := f.ActiveVersion(); v != nil {
			for _, callee := range v.Manifest.Permissions.Invoke {
				calledBy[callee] = append(calledBy[callee], f.Name)
			}
		}
	}
	out := []posture.Finding{}
	found := only == ""
	for _, f := range fns {
		if only != "" && f.Name != only {
			continue
		}
		found = true
		if in := a.postureInput(r, f, now, opts.DormantAfter, calledBy[f.Name]); in != nil {
			out = append(out, posture.Check(*in, opts)...)
		}
	}
	if !found {
		a.fail(w, r, registry.ErrNotFound)
		return
	}
	// The node is patched like a function is: its own advisories count.
	if only == "" {
		if self, err := a.selfReport(r); err == nil && len(self.Findings) > 0 {
			var ids []string
			for _, f := range self.Findings {
				ids = append(ids, f.ID+" ("+f.Package+" "+f.Version+", fixed in "+f.Fixed+")")
			}
			out = append(out, posture.Finding{Function: NodeFunction, Check: "node-vulnerable", Severity: posture.High,
				Evidence: "the node's own build: " + strings.Join(ids, ", "),
				Fix:      "upgrade the node's binary (moat version --node; docs/operations.md)"})
		}
	}
	rank := map[string]int{posture.High: 0, posture.Medium: 1, posture.Low: 2}
	slices.SortStableFunc(out, func(x, y posture.Finding) int { return rank[x.Severity] - rank[y.Severity] })
	writeJSON(w, http.StatusOK, out)
}

// postureInput gathers what the checks read of f; nil for a function
// without an active version.
func (a *API) postureInput(r *http.Request, f *registry.Function, now time.Time, window time.Duration, calledBy []string) *posture.Function {
	v := f.ActiveVersion()
	if v == nil || v.Manifest == nil {
		return nil
	}
	in := &posture.Function{Name: f.Name, Manifest: v.Manifest, Deployed: v.Deployed, CalledBy: calledBy,
		HasTriggers: len(v.Manifest.Triggers) > 0, SignaturesReq: a.posture.RequireSignature}
	var rep supply.Report
	if len(v.Checks) > 0 && json.Unmarshal(v.Checks, &rep) == nil {
		in.SignedBy = rep.SignedBy
		for _, fd := range rep.Findings {
			if fd.Decision != "allowed" {
				in.Vulnerable = append(in.Vulnerable, fd.ID)
			}
		}
	}
	for _, g := range a.grantUse(r.Context(), f.Name, v.Manifest) {
		in.Grants = append(in.Grants, posture.Grant{Grant: g.Grant, LastUsed: g.LastUsed})
	}
	if rows, err := a.use.Query(r.Context(), f.Name, now.Add(-window), a.price); err == nil {
		for _, row := range rows {
			if row.Invocations > 0 && row.Hour.After(in.LastInvoked) {
				in.LastInvoked = row.Hour
			}
		}
	}
	if a.events != nil && in.HasTriggers {
		if ts, err := a.events.Triggers(r.Context(), f.Name); err == nil && len(ts) > 0 {
			in.DeadLetters = ts[0].DeadLetters
		}
	}
	return in
}
