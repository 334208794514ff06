// Package supply decides what a function's dependencies allow: it reads the
// inventory of a deploy (Go build info, an SBOM, lock files), matches it
// against the vulnerability database, and applies the node's policy, the
// function's tightening of it, and the audited exceptions.
package supply

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/inventory"
	"github.com/moatfn/moat/internal/jsrt"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/vulndb"
)

// Decisions on a finding.
const (
	Block   = "block"   // refuses the deploy
	Warn    = "warn"    // kept with the version, shown, not refused
	Allowed = "allowed" // an exception covers it
)

// Policy is the node's vulnerability policy.
type Policy struct {
	// Block is the lowest severity of an advisory with a fixed version
	// that refuses a deploy: low, medium, high or critical; "none" never
	// refuses. Default high.
	Block string
	// Unknown is the severity assumed for an advisory that gives none (the
	// Go database gives none). Default high.
	Unknown string
	// Disable makes a re-scan that finds a blocking advisory in a deployed
	// version disable the function until it is redeployed or excepted.
	Disable bool
}

func (p Policy) withDefaults() Policy {
	if p.Block == "" {
		p.Block = "high"
	}
	if p.Unknown == "" {
		p.Unknown = "high"
	}
	return p
}

// rank orders severities; -1 for none.
func rank(s string) int { return slices.Index(manifest.Severities, s) }

// threshold is the lowest blocking severity for m: the node's, or m's own
// when it is lower.
func (p Policy) threshold(m *manifest.Manifest) string {
	p = p.withDefaults()
	t := p.Block
	if m != nil && m.Vulnerabilities.Block != "" && (t == "none" || rank(m.Vulnerabilities.Block) < rank(t)) {
		t = m.Vulnerabilities.Block
	}
	return t
}

// Finding is one advisory that affects one dependency.
type Finding struct {
	ID        string     `json:"id"`
	Aliases   []string   `json:"aliases,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Severity  string     `json:"severity"`                   // low, medium, high or critical
	Assumed   bool       `json:"severity_assumed,omitempty"` // the advisory gives none: the policy's Unknown
	Score     float64    `json:"score,omitempty"`
	Ecosystem string     `json:"ecosystem"`
	Package   string     `json:"package"`
	Version   string     `json:"version"`
	Fixed     string     `json:"fixed,omitempty"` // the lowest fixed version above Version
	Decision  string     `json:"decision"`
	Exception *Exception `json:"exception,omitempty"`
}

// Report is what a deploy's checks found; it is kept with the version.
type Report struct {
	SignedBy   string                `json:"signed_by,omitempty"`
	GoVersion  string                `json:"go_version,omitempty"`
	Main       string                `json:"main,omitempty"`
	Components []inventory.Component `json:"components,omitempty"`
	Findings   []Finding             `json:"findings,omitempty"`
	// ModuleSecrets says what secret-looking strings the module's data
	// holds and where, never the value (docs/posture.md).
	ModuleSecrets []string  `json:"module_secrets,omitempty"`
	ScannedAt     time.Time `json:"scanned_at"`
	// Database is when the vulnerability database used was imported; zero
	// when the node had none.
	Database time.Time `json:"database,omitzero"`
}

// Blocking returns the findings that refuse a deploy.
func (r *Report) Blocking() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Decision == Block {
			out = append(out, f)
		}
	}
	return out
}

// Inventory reads what a deploy is made of: the module's Go build info,
// the SBOM and the lock files the manifest names.
func Inventory(m *manifest.Manifest, files map[string][]byte) (*inventory.Inventory, error) {
	code, what := files[m.Module], m.Module
	if m.JavaScript() {
		// What runs is the runtime the binary carries: its Go toolchain and
		// modules are the function's, beside the npm packages of its lock
		// file.
		rt, err := jsrt.Module()
		if err != nil {
			return nil, err
		}
		code, what = rt, "the JavaScript runtime"
	}
	inv, err := inventory.FromWasm(code)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if inv == nil {
		inv = &inventory.Inventory{}
	}
	if m.SBOM != "" {
		cs, err := inventory.ParseSBOM(m.SBOM, files[m.SBOM])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.SBOM, err)
		}
		inv.Components = append(inv.Components, cs...)
	}
	var bundled map[string]bool
	if m.JavaScript() {
		bundled = BundledPackages(files[m.Module])
	}
	for _, lf := range m.LockFiles {
		cs, err := inventory.ParseLockFile(path.Base(lf), files[lf])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lf, err)
		}
		if len(bundled) > 0 {
			// Only what went into the bundle runs: a dev dependency in
			// the lock file does not.
			cs = slices.DeleteFunc(cs, func(c inventory.Component) bool { return c.Ecosystem == "npm" && !bundled[c.Name] })
		}
		inv.Components = append(inv.Components, cs...)
	}
	inv.Components = dedupe(inv.Components)
	return inv, nil
}

// bundledFrom matches the comment esbuild writes before each module it
// bundles: "// node_modules/lodash/pick.js".
var bundledFrom = regexp.MustCompile(`(?m)^[ \t]*// (?:[^\n]*/)?node_modules/((?:@[^/\n]+/)?[^/\n]+)/`)

// BundledPackages names the npm packages a JavaScript bundle holds, read
// off the bundle itself. None (a bundle made otherwise, or with no
// dependency) means every package of the lock files counts.
func BundledPackages(script []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range bundledFrom.FindAllSubmatch(script, -1) {
		out[string(m[1])] = true
	}
	return out
}

func dedupe(cs []inventory.Component) []inventory.Component {
	slices.SortFunc(cs, func(a, b inventory.Component) int {
		return strings.Compare(a.Ecosystem+"\x00"+a.Name+"\x00"+a.Version, b.Ecosystem+"\x00"+b.Name+"\x00"+b.Version)
	})
	return slices.CompactFunc(cs, func(a, b inventory.Component) bool {
		return a.Ecosystem == b.Ecosystem && a.Name == b.Name && a.Version == b.Version
	})
}

// Evaluate matches components against db and decides each finding for the
// function m under p and the exceptions in force at now.
func Evaluate(db *vulndb.DB, components []inventory.Component, m *manifest.Manifest, p Policy, exceptions []Exception, now time.Time) []Finding {
	p = p.withDefaults()
	threshold := p.threshold(m)
	var out []Finding
	seen := map[string]bool{}
	for _, c := range components {
		if db == nil {
			break
		}
		for _, v := range db.Match(c.Ecosystem, c.Name, c.Version) {
			key := v.ID + "\x00" + c.Ecosystem + "\x00" + c.Name + "\x00" + c.Version
			if seen[key] {
				continue
			}
			seen[key] = true
			f := Finding{
				ID: v.ID, Aliases: v.Aliases, Summary: v.Summary, Severity: normalise(v.Severity), Score: v.Score,
				Ecosystem: c.Ecosystem, Package: c.Name, Version: c.Version, Fixed: v.Fixed,
			}
			if f.Severity == "" {
				f.Severity, f.Assumed = p.Unknown, true
			}
			if c.Ecosystem == "Go" && c.Name != "stdlib" && f.Fixed != "" && !strings.HasPrefix(f.Fixed, "v") {
				f.Fixed = "v" + f.Fixed // as go get takes it
			}
			f.Decision = Warn
			if threshold != "none" && rank(f.Severity) >= rank(threshold) && f.Fixed != "" {
				f.Decision = Block
			}
			if e := covering(exceptions, m.Name, f, now); e != nil {
				f.Decision, f.Exception = Allowed, e
			}
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return strings.Compare(a.Package+"\x00"+a.ID, b.Package+"\x00"+b.ID)
	})
	return out
}

// normalise maps a database's severity word to ours.
func normalise(s string) string {
	switch strings.ToLower(s) {
	case "low":
		return "low"
	case "medium", "moderate":
		return "medium"
	case "high":
		return "high"
	case "critical":
		return "critical"
	}
	return ""
}

// covering returns the exception in force at now for fn that names f's
// advisory or one of its aliases.
func covering(exceptions []Exception, fn string, f Finding, now time.Time) *Exception {
	for i := range exceptions {
		e := &exceptions[i]
		if e.Function != fn || !now.Before(e.Until) {
			continue
		}
		if e.ID == f.ID || slices.Contains(f.Aliases, e.ID) {
			return e
		}
	}
	return nil
}

// BlockedError refuses a deploy: it names each blocking advisory, the
// dependency and the version to move to.
type BlockedError struct {
	Function  string
	Threshold string
	Findings  []Finding
}

func (e *BlockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy of %s blocked: %d advisor", e.Function, len(e.Findings))
	if len(e.Findings) == 1 {
		b.WriteString("y")
	} else {
		b.WriteString("ies")
	}
	fmt.Fprintf(&b, " of severity %s or above with a fix", e.Threshold)
	for _, f := range e.Findings {
		fmt.Fprintf(&b, "; %s %s: %s", f.Package, f.Version, f.ID)
		if len(f.Aliases) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(f.Aliases, ", "))
		}
		sev := f.Severity
		if f.Assumed {
			sev += ", assumed: the advisory gives no severity"
		}
		fmt.Fprintf(&b, ", %s: move to %s or later", sev, f.Fixed)
	}
	b.WriteString(" (or record an exception: moat vuln allow ID --function F --until DATE --reason TEXT)")
	return b.String()
}
