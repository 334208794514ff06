package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/inventory"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/vulndb"
)

// outcome is the audit record of a control action and its error.
func outcome(action, target string, err error) audit.Record {
	rec := audit.Record{Action: action, Target: target, Outcome: audit.OK}
	if err != nil {
		rec.Outcome, rec.Reason = audit.Failed, truncate(err.Error(), 300)
	}
	return rec
}

// MaxImport caps an upload of advisories (osv.dev's npm all.zip is the
// largest, a few hundred MiB).
const MaxImport = 1 << 30

// SupplyChain is what the supply-chain routes need from the node.
type SupplyChain[I, S, F any] interface {
	Import(ctx context.Context, r io.Reader, actor string) (I, error)
	Status() S
	Findings(ctx context.Context) (F, error)
	Allow(ctx context.Context, e supply.Exception) error
	Exceptions(ctx context.Context) ([]supply.Exception, error)
	RemoveException(ctx context.Context, fn, id string) error
	SBOM(ctx context.Context, fn string) ([]byte, error)
	Scan(ctx context.Context, req ScanRequest) (*ScanResult, error)
}

// supplyRoutes adapts a SupplyChain of any result types to the handlers.
type supplyRoutes struct {
	importDB   func(ctx context.Context, r io.Reader, actor string) (any, error)
	status     func() any
	findings   func(ctx context.Context) (any, error)
	allow      func(ctx context.Context, e supply.Exception) error
	exceptions func(ctx context.Context) ([]supply.Exception, error)
	remove     func(ctx context.Context, fn, id string) error
	sbom       func(ctx context.Context, fn string) ([]byte, error)
	scan       func(ctx context.Context, req ScanRequest) (*ScanResult, error)
}

// Supply wraps a node's supply chain for Services.
func Supply[I, S, F any](s SupplyChain[I, S, F]) *supplyRoutes {
	return &supplyRoutes{
		importDB: func(ctx context.Context, r io.Reader, actor string) (any, error) { return s.Import(ctx, r, actor) },
		status:   func() any { return s.Status() },
		findings: func(ctx context.Context) (any, error) { return s.Findings(ctx) },
		allow:    s.Allow, exceptions: s.Exceptions, remove: s.RemoveException, sbom: s.SBOM, scan: s.Scan,
	}
}

// importVulnDB answers POST /api/v1/vulndb: the body is an osv.dev
// all.zip or one OSV JSON record.
func (a *API) importVulnDB(w http.ResponseWriter, r *http.Request) {
	res, err := a.supply.importDB(r.Context(), http.MaxBytesReader(w, r.Body, MaxImport), identity(r).User())
	if err != nil {
		a.record(r, outcome("vulndb.import", "", err), true)
		Problem(w, http.StatusBadRequest, "import refused", truncate(err.Error(), 1000)+"; nothing was changed")
		return
	}
	a.done(w, r, "vulndb.import", "", "", nil, func() {
		a.log.InfoContext(r.Context(), "advisories imported", slog.String("remote_addr", r.RemoteAddr))
		writeJSON(w, http.StatusOK, res)
	})
}

func (a *API) vulnDBStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.supply.status())
}

// ScanRequest is the body of POST /api/v1/vulns/scan: what a function is
// made of, as moat scan read it from its folder, to match against the
// node's database. Block and Unknown override the node's policy when set;
// ManifestBlock is the manifest's vulnerabilities.block.
type ScanRequest struct {
	Function      string                `json:"function"`
	Components    []inventory.Component `json:"components"`
	Block         string                `json:"block,omitempty"`
	Unknown       string                `json:"unknown,omitempty"`
	ManifestBlock string                `json:"manifest_block,omitempty"`
}

// ScanResult is a scan's findings and the database they came from.
type ScanResult struct {
	Database   vulndb.Status    `json:"database"`
	Findings   []supply.Finding `json:"findings"`
	Threshold  string           `json:"threshold"`
	Exceptions int              `json:"exceptions"` // the node's exceptions in force for Function
}

// MaxScanComponents bounds a scan request.
const MaxScanComponents = 10000

// Check refuses a scan request no scan could come from.
func (q *ScanRequest) Check() error {
	if q.Function != "" && !manifest.ValidName(q.Function) {
		return fmt.Errorf("function: not a function name")
	}
	if len(q.Components) > MaxScanComponents {
		return fmt.Errorf("components: more than %d", MaxScanComponents)
	}
	for i, c := range q.Components {
		for _, f := range []string{c.Ecosystem, c.Name, c.Version, c.Source} {
			if len(f) > 512 || !utf8.ValidString(f) || strings.ContainsFunc(f, unicode.IsControl) {
				return fmt.Errorf("components[%d]: a field is over 512 bytes or not plain text", i)
			}
		}
	}
	for field, v := range map[string]string{"block": q.Block, "manifest_block": q.ManifestBlock} {
		if v != "" && v != "none" && !slices.Contains(manifest.Severities, v) {
			return fmt.Errorf("%s: %q is not low, medium, high, critical or none", field, truncate(v, 20))
		}
	}
	if q.Unknown != "" && !slices.Contains(manifest.Severities, q.Unknown) {
		return fmt.Errorf("unknown: %q is not low, medium, high or critical", truncate(q.Unknown, 20))
	}
	return nil
}

// scanVulns answers POST /api/v1/vulns/scan: a read of the database, which
// changes nothing and so is not audited.
func (a *API) scanVulns(w http.ResponseWriter, r *http.Request) {
	var req ScanRequest
	if err := decodeJSON(r, &req); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", `the body must be {"function","components":[{"ecosystem","name","version"}],...} under 1MiB`)
		return
	}
	if err := req.Check(); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	res, err := a.supply.scan(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) vulnFindings(w http.ResponseWriter, r *http.Request) {
	out, err := a.supply.findings(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// ExceptionRequest is the body of POST /api/v1/vulns/exceptions. Until is
// an RFC 3339 time or a date (the end of that day, UTC).
type ExceptionRequest struct {
	ID       string `json:"id"`
	Function string `json:"function"`
	Until    string `json:"until"`
	Reason   string `json:"reason"`
}

// ParseUntil reads an exception's end: a date or an RFC 3339 time.
func ParseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(24*time.Hour - time.Second).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("until %q: want a date (2027-01-31) or an RFC 3339 time", truncate(s, 40))
	}
	return t.UTC(), nil
}

func (a *API) allowVuln(w http.ResponseWriter, r *http.Request) {
	var req ExceptionRequest
	if err := decodeJSON(r, &req); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", `the body must be {"id","function","until","reason"}`)
		return
	}
	until, err := ParseUntil(req.Until)
	if err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	e := supply.Exception{ID: req.ID, Function: req.Function, Until: until, Reason: req.Reason, By: identity(r).User()}
	err = a.supply.allow(r.Context(), e)
	rec := outcome("vuln.allow", truncate(req.Function, 70), err)
	rec.Resource, rec.Reason = truncate(req.ID, 100), truncate(fmt.Sprintf("until %s: %s", until.Format(time.RFC3339), req.Reason), 300)
	if err != nil {
		rec.Reason = truncate(err.Error(), 300)
	}
	aerr := a.record(r, rec, true)
	switch {
	case err != nil:
		a.fail(w, r, err)
	case aerr != nil:
		Problem(w, http.StatusInternalServerError, "not recorded", "the exception was stored but its audit record was not; see the node's log")
	default:
		writeJSON(w, http.StatusCreated, e)
	}
}

func (a *API) listExceptions(w http.ResponseWriter, r *http.Request) {
	list, err := a.supply.exceptions(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []supply.Exception{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *API) removeException(w http.ResponseWriter, r *http.Request) {
	fn, id := r.PathValue("function"), r.PathValue("id")
	err := a.supply.remove(r.Context(), fn, id)
	rec := outcome("vuln.unallow", truncate(fn, 70), err)
	rec.Resource = truncate(id, 100)
	if err == nil {
		if aerr := a.record(r, rec, true); aerr != nil {
			Problem(w, http.StatusInternalServerError, "not recorded", "the exception was removed but its audit record was not")
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.fail(w, r, err)
}

func (a *API) sbom(w http.ResponseWriter, r *http.Request) {
	b, err := a.supply.sbom(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.cyclonedx+json")
	w.Write(b)
}
