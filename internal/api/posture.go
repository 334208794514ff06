package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime"
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
	opts.Toolchains = []string{runtime.Version()} // the node's own, and those that built its functions
	for _, f := range fns {
		if v := f.ActiveVersion(); v != nil {
			for _, callee := range v.Manifest.Permissions.Invoke {
				calledBy[callee] = append(calledBy[callee], f.Name)
			}
			var rep supply.Report
			if len(v.Checks) > 0 && json.Unmarshal(v.Checks, &rep) == nil && rep.GoVersion != "" {
				opts.Toolchains = append(opts.Toolchains, rep.GoVersion)
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
		if in := a.postureInput(r.Context(), f, now, opts.DormantAfter, calledBy[f.Name]); in != nil {
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
func (a *API) postureInput(ctx context.Context, f *registry.Function, now time.Time, window time.Duration, calledBy []string) *posture.Function {
	v := f.ActiveVersion()
	if v == nil || v.Manifest == nil {
		return nil
	}
	in := &posture.Function{Name: f.Name, Manifest: v.Manifest, Deployed: v.Deployed, Enabled: f.Enabled, CalledBy: calledBy,
		HasTriggers: len(v.Manifest.Triggers) > 0, SignaturesReq: a.posture.RequireSignature}
	var rep supply.Report
	if len(v.Checks) > 0 && json.Unmarshal(v.Checks, &rep) == nil {
		in.SignedBy, in.GoVersion, in.ModuleSecrets = rep.SignedBy, rep.GoVersion, rep.ModuleSecrets
		for _, fd := range rep.Findings {
			if fd.Decision != "allowed" {
				in.Vulnerable = append(in.Vulnerable, fd.ID)
			}
		}
	}
	for _, g := range a.grantUse(ctx, f.Name, v.Manifest) {
		in.Grants = append(in.Grants, posture.Grant{Grant: g.Grant, LastUsed: g.LastUsed})
	}
	if rows, err := a.use.Query(ctx, f.Name, now.Add(-window), a.price); err == nil {
		for _, row := range rows {
			if row.Invocations > 0 && row.Hour.After(in.LastInvoked) {
				in.LastInvoked = row.Hour
			}
		}
	}
	if a.events != nil && in.HasTriggers {
		if ts, err := a.events.Triggers(ctx, f.Name); err == nil && len(ts) > 0 {
			in.DeadLetters = ts[0].DeadLetters
		}
	}
	return in
}

// DormantPrefix starts the reason of a function the dormant policy
// disabled.
const DormantPrefix = "dormant: "

// DisableDormant disables every serving function the posture checks find
// dormant (--disable-dormant), audited as function.disable by "posture";
// moat enable NAME (or a deploy) brings one back. It returns the names.
func (a *API) DisableDormant(ctx context.Context) ([]string, error) {
	fns, err := a.fns.List(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	window := a.posture.DormantAfter
	if window == 0 {
		window = 30 * 24 * time.Hour
	}
	var out []string
	for _, f := range fns {
		if f.Disabled != "" {
			continue
		}
		in := a.postureInput(ctx, f, now, window, nil)
		if in == nil {
			continue
		}
		for _, fd := range posture.Check(*in, posture.Options{Now: now, DormantAfter: window}) {
			if fd.Check != "dormant" {
				continue
			}
			err := a.fns.SetDisabled(ctx, f.Name, DormantPrefix+fd.Evidence)
			rec := auditRecordFor("function.disable", f.Name, "dormant", err)
			rec.Actor = "posture"
			if aerr := a.audit.Append(ctx, rec, true); aerr != nil && err == nil {
				err = aerr
			}
			if err != nil {
				return out, err
			}
			a.log.Warn("dormant function disabled", slog.String("fn", f.Name), slog.String("why", fd.Evidence))
			out = append(out, f.Name)
		}
	}
	return out, nil
}

// DisableRequest is the body of POST /api/v1/functions/{name}/disable.
type DisableRequest struct {
	Reason string `json:"reason"`
}

func (a *API) disable(w http.ResponseWriter, r *http.Request) {
	var req DisableRequest
	if err := decodeJSON(r, &req); err != nil || len(req.Reason) > 200 || strings.ContainsFunc(req.Reason, func(c rune) bool { return c < 0x20 }) {
		Problem(w, http.StatusBadRequest, "bad request", `want {"reason": "..."}: at most 200 characters of plain text`)
		return
	}
	if req.Reason == "" {
		req.Reason = "disabled by " + identity(r).User()
	}
	name := r.PathValue("name")
	err := a.fns.SetDisabled(r.Context(), name, req.Reason)
	a.done(w, r, "function.disable", name, "", err, func() { writeJSON(w, http.StatusOK, map[string]string{"disabled": name, "reason": req.Reason}) })
}

func (a *API) enable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.fns.SetDisabled(r.Context(), name, "")
	a.done(w, r, "function.enable", name, "", err, func() { writeJSON(w, http.StatusOK, map[string]string{"enabled": name}) })
}
