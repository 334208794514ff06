package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/egress"
	"github.com/moatfn/moat/internal/inventory"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/posture"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/secrets"
	"github.com/moatfn/moat/internal/sign"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/vulndb"
)

// supplyChain is the node's side of the supply-chain checks: the
// vulnerability database, the exceptions, the checks made at deploy and the
// re-scan after each import.
type supplyChain struct {
	log        *slog.Logger
	cfg        *Config
	registry   *registry.Registry
	db         *vulndb.Store
	exceptions *supply.Exceptions
	audit      interface {
		Append(context.Context, audit.Record, bool) error
	}
	tmp string
	now func() time.Time

	mu sync.Mutex // one import or re-scan at a time
}

func openSupplyChain(ctx context.Context, n *Node) (*supplyChain, error) {
	db, err := vulndb.OpenStore(ctx, n.store)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database: %w", err)
	}
	exc, err := supply.OpenExceptions(ctx, n.store)
	if err != nil {
		return nil, err
	}
	return &supplyChain{
		log: n.log.With("component", "supply"), cfg: &n.cfg, registry: n.registry, db: db, exceptions: exc,
		audit: n.audit, tmp: filepath.Join(n.cfg.DataDir, "tmp"), now: time.Now,
	}, nil
}

// check vets a deploy: its signature when the node requires one, then its
// dependencies against the vulnerability database and the policy.
func (s *supplyChain) check(ctx context.Context, m *manifest.Manifest, up *registry.Upload) (*supply.Report, error) {
	rep := &supply.Report{ScannedAt: s.now().UTC()}
	if s.cfg.RequireSignature {
		id, err := sign.Verify(up.Signature, s.cfg.TrustedKeys, up.Manifest, up.Files)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", registry.ErrBadDeploy, err)
		}
		rep.SignedBy = id
	}
	inv, err := supply.Inventory(m, up.Files)
	if err != nil {
		return nil, fmt.Errorf("%w: dependencies: %w", registry.ErrBadDeploy, err)
	}
	rep.GoVersion, rep.Main, rep.Components = inv.GoVersion, inv.Main, inv.Components
	if m.JavaScript() {
		rep.ModuleSecrets = posture.ScriptSecrets(up.Files[m.Module])
	} else {
		rep.ModuleSecrets = posture.ModuleSecrets(up.Files[m.Module])
	}
	exc, err := s.exceptions.For(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	st := s.db.Status()
	rep.Database = st.ImportedAt
	rep.Findings = supply.Evaluate(s.db.Current(), rep.Components, m, s.cfg.VulnPolicy, exc, s.now())
	if blocking := rep.Blocking(); len(blocking) > 0 {
		return nil, fmt.Errorf("%w: %w", registry.ErrBadDeploy, &supply.BlockedError{Function: m.Name, Threshold: threshold(s.cfg.VulnPolicy, m), Findings: blocking})
	}
	return rep, nil
}

func threshold(p supply.Policy, m *manifest.Manifest) string {
	t := p.Block
	if t == "" {
		t = "high"
	}
	if b := m.Vulnerabilities.Block; b != "" && (t == "none" || slices.Index(manifest.Severities, b) < slices.Index(manifest.Severities, t)) {
		t = b
	}
	return t
}

// deployChecks is the registry's Check: the supply-chain checks, then the
// KV buckets the grants need.
func (n *Node) deployChecks(caps *capabilities) func(ctx context.Context, m *manifest.Manifest, up *registry.Upload) (json.RawMessage, error) {
	return func(ctx context.Context, m *manifest.Manifest, up *registry.Upload) (json.RawMessage, error) {
		for _, name := range m.Permissions.Secrets {
			switch err := caps.secrets.MayGrant(ctx, name, m.Name); {
			case errors.Is(err, secrets.ErrNotFound):
				return nil, fmt.Errorf("%w: permissions.secrets: %s is not set; an admin sets it and the functions it may be granted to: moat secret set %s --functions %s", registry.ErrBadDeploy, name, name, m.Name)
			case errors.Is(err, secrets.ErrNotAllowed):
				return nil, fmt.Errorf("%w: permissions.secrets: %s may not be granted to %s; only an admin can allow it: moat secret allow %s --functions ...,%s", registry.ErrBadDeploy, name, m.Name, name, m.Name)
			case err != nil:
				return nil, err
			}
		}
		for _, g := range m.Permissions.Egress {
			if err := egress.CheckGrant(g, n.cfg.EgressAllow); err != nil {
				return nil, fmt.Errorf("%w: permissions.%w", registry.ErrBadDeploy, err)
			}
		}
		rep, err := n.supply.check(ctx, m, up)
		if err != nil {
			return nil, err
		}
		if err := caps.ensureBuckets(ctx, m); err != nil {
			return nil, err
		}
		return json.Marshal(rep)
	}
}

// report decodes a version's checks; nil when it has none.
func report(v *registry.Version) *supply.Report {
	if v == nil || len(v.Checks) == 0 {
		return nil
	}
	var r supply.Report
	if json.Unmarshal(v.Checks, &r) != nil {
		return nil
	}
	return &r
}

// ImportResult is what an import of advisories did.
type ImportResult struct {
	Status   vulndb.Status    `json:"status"`
	Found    []FunctionReport `json:"new_findings"` // findings the import added, per function
	Disabled []string         `json:"disabled,omitempty"`
}

// FunctionReport is the findings of a function's active version.
type FunctionReport struct {
	Function string           `json:"function"`
	Version  string           `json:"version"`
	Disabled string           `json:"disabled,omitempty"`
	Findings []supply.Finding `json:"findings"`
}

// Import reads advisories (an osv.dev all.zip or a JSON record) from r,
// merges them into the database and re-scans every deployed function. A
// bad file changes nothing.
func (s *supplyChain) Import(ctx context.Context, r io.Reader, actor string) (*ImportResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.tmp, "osv-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	head := make([]byte, 4)
	n, _ := io.ReadFull(r, head)
	_, err = io.Copy(f, io.MultiReader(bytes.NewReader(head[:n]), r))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	name := f.Name() + ".json"
	if bytes.HasPrefix(head[:n], []byte("PK\x03\x04")) {
		name = f.Name() + ".zip"
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return nil, err
	}
	defer os.Remove(name)
	st, err := s.db.Import(ctx, name)
	if err != nil {
		return nil, err
	}
	res, err := s.rescan(ctx, actor)
	if err != nil {
		return nil, err
	}
	res.Status = st
	return res, nil
}

// rescan matches every function's active version against the database,
// keeps the findings with the version, records new ones, and disables or
// enables functions as the policy says. Callers hold s.mu.
func (s *supplyChain) rescan(ctx context.Context, actor string) (*ImportResult, error) {
	fns, err := s.registry.List(ctx)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{}
	db, st := s.db.Current(), s.db.Status()
	for _, f := range fns {
		v := f.ActiveVersion()
		rep := report(v)
		if rep == nil {
			continue
		}
		exc, err := s.exceptions.For(ctx, f.Name)
		if err != nil {
			return nil, err
		}
		old := map[string]bool{}
		for _, fd := range rep.Findings {
			old[fd.ID+"\x00"+fd.Package+"\x00"+fd.Version] = true
		}
		rep.Findings = supply.Evaluate(db, rep.Components, v.Manifest, s.cfg.VulnPolicy, exc, s.now())
		rep.ScannedAt, rep.Database = s.now().UTC(), st.ImportedAt
		b, err := json.Marshal(rep)
		if err != nil {
			return nil, err
		}
		if err := s.registry.SetChecks(ctx, f.Name, v.ID, b); err != nil {
			return nil, err
		}
		var fresh []supply.Finding
		for _, fd := range rep.Findings {
			if !old[fd.ID+"\x00"+fd.Package+"\x00"+fd.Version] {
				fresh = append(fresh, fd)
				s.record(ctx, audit.Record{Action: "vuln.found", Target: f.Name, Version: v.ID, Outcome: audit.OK, Actor: actor,
					Reason: describe(fd)})
				s.log.WarnContext(ctx, "vulnerable dependency", slog.String("fn", f.Name), slog.String("version", v.ID),
					slog.String("advisory", fd.ID), slog.String("package", fd.Package), slog.String("dependency_version", fd.Version),
					slog.String("decision", fd.Decision))
			}
		}
		if len(fresh) > 0 {
			res.Found = append(res.Found, FunctionReport{Function: f.Name, Version: v.ID, Findings: fresh})
		}
		blocking := rep.Blocking()
		switch {
		case len(blocking) > 0 && s.cfg.VulnPolicy.Disable && f.Disabled == "":
			reason := "vulnerable dependency " + describe(blocking[0]) + "; redeploy with the fix or record an exception"
			if err := s.registry.SetDisabled(ctx, f.Name, reason); err != nil {
				return nil, err
			}
			s.record(ctx, audit.Record{Action: "disable", Target: f.Name, Version: v.ID, Outcome: audit.OK, Actor: actor, Reason: reason})
			res.Disabled = append(res.Disabled, f.Name)
		case len(blocking) == 0 && f.Disabled != "":
			if err := s.registry.SetDisabled(ctx, f.Name, ""); err != nil {
				return nil, err
			}
			s.record(ctx, audit.Record{Action: "enable", Target: f.Name, Version: v.ID, Outcome: audit.OK, Actor: actor,
				Reason: "no blocking advisory left"})
		}
	}
	return res, nil
}

func (s *supplyChain) record(ctx context.Context, rec audit.Record) {
	if err := s.audit.Append(ctx, rec, true); err != nil {
		s.log.ErrorContext(ctx, "audit append", slog.String("action", rec.Action), slog.Any("err", err))
	}
}

// describe is a finding in one line.
func describe(f supply.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s %s (%s", f.ID, f.Package, f.Version, f.Severity)
	if f.Assumed {
		b.WriteString(", assumed")
	}
	b.WriteString(")")
	if f.Fixed != "" {
		fmt.Fprintf(&b, ", fixed in %s", f.Fixed)
	}
	fmt.Fprintf(&b, ": %s", f.Decision)
	return b.String()
}

// Status is the database's import time and counts.
func (s *supplyChain) Status() vulndb.Status { return s.db.Status() }

// Findings returns the findings of every function's active version.
func (s *supplyChain) Findings(ctx context.Context) ([]FunctionReport, error) {
	fns, err := s.registry.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []FunctionReport{}
	for _, f := range fns {
		v := f.ActiveVersion()
		fr := FunctionReport{Function: f.Name, Disabled: f.Disabled, Findings: []supply.Finding{}}
		if v != nil {
			fr.Version = v.ID
		}
		if rep := report(v); rep != nil && rep.Findings != nil {
			fr.Findings = rep.Findings
		}
		out = append(out, fr)
	}
	return out, nil
}

// Allow records an exception and re-scans, so that a function it unblocks
// serves again.
func (s *supplyChain) Allow(ctx context.Context, e supply.Exception) error {
	e.Created = s.now().UTC()
	if err := e.Check(e.Created); err != nil {
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exceptions.Allow(ctx, e); err != nil {
		return err
	}
	_, err := s.rescan(ctx, e.By)
	return err
}

// Exceptions lists every exception.
func (s *supplyChain) Exceptions(ctx context.Context) ([]supply.Exception, error) {
	return s.exceptions.List(ctx)
}

// RemoveException removes one; the function's findings are re-evaluated at
// the next import or deploy.
func (s *supplyChain) RemoveException(ctx context.Context, fn, id string) error {
	err := s.exceptions.Remove(ctx, fn, id)
	if errors.Is(err, supply.ErrNoException) {
		return fmt.Errorf("%w: %w", registry.ErrNotFound, err)
	}
	return err
}

// SBOM is a CycloneDX SBOM of fn's active version.
func (s *supplyChain) SBOM(ctx context.Context, fn string) ([]byte, error) {
	f, err := s.registry.Get(ctx, fn)
	if err != nil {
		return nil, err
	}
	v := f.ActiveVersion()
	rep := report(v)
	if rep == nil {
		rep = &supply.Report{}
	}
	return inventory.CycloneDX(fn, v.ID, &inventory.Inventory{GoVersion: rep.GoVersion, Main: rep.Main, Components: rep.Components})
}

// Scan matches a function's components, read by moat scan from its folder,
// against the node's database, under the node's policy (or the request's)
// and its exceptions for the function: what a deploy would decide.
func (s *supplyChain) Scan(ctx context.Context, req api.ScanRequest) (*api.ScanResult, error) {
	pol := s.cfg.VulnPolicy
	if req.Block != "" {
		pol.Block = req.Block
	}
	if req.Unknown != "" {
		pol.Unknown = req.Unknown
	}
	m := &manifest.Manifest{Name: req.Function}
	m.Vulnerabilities.Block = req.ManifestBlock
	var exc []supply.Exception
	if req.Function != "" {
		var err error
		if exc, err = s.exceptions.For(ctx, req.Function); err != nil {
			return nil, err
		}
	}
	findings := supply.Evaluate(s.db.Current(), req.Components, m, pol, exc, s.now())
	if findings == nil {
		findings = []supply.Finding{}
	}
	return &api.ScanResult{Database: s.db.Status(), Findings: findings, Threshold: threshold(pol, m), Exceptions: len(exc)}, nil
}
