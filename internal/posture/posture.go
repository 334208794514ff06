// Package posture reads a function's risk from what the node already
// records of it: its manifest, its grants and their last use, its last
// invocation, its findings, its dead letters (docs/posture.md). Each check
// is a finding with an id, a severity, the evidence and the fix. The
// checks never print a secret: a secret-looking value is named by where it
// is, not shown.
package posture

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/inventory"
	"github.com/moatfn/moat/internal/manifest"
)

// Severities, from the least to the most pressing.
const (
	Low    = "low"
	Medium = "medium"
	High   = "high"
)

// Finding is one thing wrong with a function's posture.
type Finding struct {
	Function string `json:"function"`
	Check    string `json:"check"` // the check's id, like "public-no-schema"
	Severity string `json:"severity"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
}

// Grant is one grant of the active version and when it was last used.
type Grant struct {
	Grant    string     // "kv:contacts:write", "secret:MAILER_KEY", "egress:https://...", "invoke:fn"
	LastUsed *time.Time // nil: never
}

// Function is what the checks read of one function.
type Function struct {
	Name     string
	Manifest *manifest.Manifest
	Deployed time.Time // of the active version
	Enabled  time.Time // when it was last enabled after being disabled; zero if never
	// LastInvoked is the hour of its last invocation within the usage kept;
	// zero when none is recorded.
	LastInvoked   time.Time
	Grants        []Grant
	SignedBy      string
	Vulnerable    []string // ids of the open advisories
	DeadLetters   int
	CalledBy      []string // the functions whose manifests may invoke this one
	HasTriggers   bool
	SignaturesReq bool   // the node requires signatures: unsigned cannot happen
	GoVersion     string // the toolchain that built it, "go1.26.8"; "" when not Go
	// ModuleSecrets says what secret-looking strings the module's data
	// holds and where ("an AWS access key id at data offset 0x1f2c"),
	// never the value.
	ModuleSecrets []string
}

// Options tune the checks.
type Options struct {
	Now          time.Time
	DormantAfter time.Duration // 0 is 30 days
	// Toolchains are the Go versions the node knows of (its own, those
	// that built the functions deployed): a function built with an older
	// patch of one of their minors, or a minor Go no longer supports, is
	// on a deprecated runtime.
	Toolchains []string
}

// Check runs every check on f.
func Check(f Function, o Options) []Finding {
	if o.DormantAfter == 0 {
		o.DormantAfter = 30 * 24 * time.Hour
	}
	m := f.Manifest
	if m == nil {
		return nil
	}
	var out []Finding
	add := func(check, sev, evidence, fix string) {
		out = append(out, Finding{Function: f.Name, Check: check, Severity: sev, Evidence: evidence, Fix: fix})
	}
	public := m.HTTP.Auth == "public"
	since := f.LastInvoked
	for _, t := range []time.Time{f.Deployed, f.Enabled} {
		if since.Before(t) {
			since = t // idle counts from the deploy, or from being enabled again
		}
	}
	idle := o.Now.Sub(since)
	if idle >= o.DormantAfter && (len(f.Grants) > 0 || f.HasTriggers || public) {
		add("dormant", Medium, fmt.Sprintf("no invocation for %s, yet it keeps %d grants%s", days(idle), len(f.Grants), ifs(f.HasTriggers, " and its triggers", "")),
			"remove it (moat rm "+f.Name+") if nothing needs it, or redeploy it with the grants it still needs")
	}
	if o.Now.Sub(f.Deployed) >= o.DormantAfter {
		var unused []string
		for _, g := range f.Grants {
			if g.LastUsed == nil || o.Now.Sub(*g.LastUsed) >= o.DormantAfter {
				unused = append(unused, g.Grant)
			}
		}
		if len(unused) > 0 {
			add("unused-grants", Medium, fmt.Sprintf("%s not used in %s", strings.Join(unused, ", "), days(o.DormantAfter)),
				"drop them from permissions: "+strings.Join(smaller(m, unused), "; "))
		}
	}
	if public && m.Input.Schema == "" && takesBody(m) {
		add("public-no-schema", High, "public, takes "+strings.Join(bodyMethods(m), ", ")+" bodies, and has no input.schema",
			"add input.schema (JSON Schema 2020-12): the node then refuses bad input before any instance starts")
	}
	if public && m.Limits.Rate == (manifest.Rate{}) && m.Limits.RatePerCaller == (manifest.Rate{}) && m.Budget == (manifest.Budget{}) {
		add("public-unbounded", High, "public with no limits.rate, no limits.rate_per_caller and no budget",
			"set limits.rate_per_caller and a budget (invocations and gb_seconds per day): a flood then costs a known amount")
	}
	for _, e := range m.Permissions.Egress {
		if why := riskyEgress(e); why != "" {
			add("egress-risky", High, fmt.Sprintf("egress %s: %s", e, why), "grant only https:// prefixes on public hosts")
		}
	}
	for _, k := range sortedKeys(m.Env) {
		if why := secretLooking(m.Env[k]); why != "" {
			add("secret-in-env", High, fmt.Sprintf("env %s looks like a secret (%s); its value is not shown", k, why),
				"move it to a secret: moat secret set "+strings.ToUpper(k)+", then permissions.secrets")
		}
	}
	if f.GoVersion != "" {
		if sev, evidence, fix := toolchainCheck(f.GoVersion, o.Toolchains); sev != "" {
			add("toolchain-outdated", sev, evidence, fix)
		}
	}
	for _, where := range f.ModuleSecrets {
		add("secret-in-module", High, "the module's data holds "+where+"; its value is not shown",
			"take it out of the source and the binary, rotate it, and read it at run time from a secret (permissions.secrets)")
	}
	if len(f.Vulnerable) > 0 {
		add("vulnerable", High, fmt.Sprintf("open advisories: %s", strings.Join(f.Vulnerable, ", ")), "moat vuln ls names the versions to move to; rebuild and redeploy")
	}
	if f.SignedBy == "" && !f.SignaturesReq {
		add("unsigned", Low, "the active version carries no signature, and the node does not require one",
			"sign deploys (moat keygen, moat sign) and run the node with --require-signature --trusted-key")
	}
	if strings.TrimSpace(m.Owner) == "" {
		add("no-owner", Low, "no owner: nobody to ask when it breaks or leaks", "set owner in moat.yaml")
	}
	if f.DeadLetters > 0 {
		add("dead-letters", Medium, fmt.Sprintf("%d dead letters kept", f.DeadLetters), "moat dlq ls "+f.Name+", fix the cause, then moat dlq replay or purge")
	}
	if m.HTTP.Auth == "internal" && len(m.HTTP.Callers) == 0 && !f.HasTriggers {
		add("unreachable", Low, "auth internal, no callers and no triggers: nothing can run it", "remove it, or name its callers in http.callers")
	} else if m.HTTP.Auth == "internal" && !f.HasTriggers {
		var missing []string
		for _, c := range m.HTTP.Callers {
			if !slices.Contains(f.CalledBy, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) == len(m.HTTP.Callers) {
			add("unreachable", Low, "its callers ("+strings.Join(missing, ", ")+") have no permissions.invoke naming it", "remove it, or grant the callers permissions.invoke")
		}
	}
	return out
}

func ifs(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func days(d time.Duration) string { return fmt.Sprintf("%d days", int(d.Hours()/24)) }

func bodyMethods(m *manifest.Manifest) []string {
	var out []string
	for _, meth := range m.Methods() {
		if meth == "POST" || meth == "PUT" || meth == "PATCH" {
			out = append(out, meth)
		}
	}
	return out
}

func takesBody(m *manifest.Manifest) bool { return len(bodyMethods(m)) > 0 }

// smaller says what the permissions would be without the unused grants.
func smaller(m *manifest.Manifest, unused []string) []string {
	var out []string
	for _, g := range unused {
		kind, rest, _ := strings.Cut(g, ":")
		switch kind {
		case "kv":
			bucket, _, _ := strings.Cut(rest, ":")
			out = append(out, "remove kv."+bucket)
		case "secret":
			out = append(out, "remove "+rest+" from secrets")
		case "egress":
			out = append(out, "remove "+rest+" from egress")
		case "invoke":
			out = append(out, "remove "+rest+" from invoke")
		case "publish":
			out = append(out, "remove "+rest+" from publish")
		default:
			out = append(out, "remove "+g)
		}
	}
	return out
}

// riskyEgress says what is wrong with an egress prefix: plain http, or a
// host that is an address in a private, loopback or link-local range.
func riskyEgress(prefix string) string {
	u, err := url.Parse(prefix)
	if err != nil {
		return "not a URL"
	}
	if u.Scheme != "https" {
		return "not https: the traffic and whatever it carries can be read and changed on the way"
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
		return "a private or loopback address: a way into the internal network"
	}
	if h := strings.ToLower(u.Hostname()); h == "localhost" || strings.HasSuffix(h, ".internal") || strings.HasSuffix(h, ".local") {
		return "an internal host name"
	}
	return ""
}

// Known key formats; a match says which, never the value.
var keyFormats = []struct {
	name string
	re   *regexp.Regexp
}{
	{"an AWS access key id", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a GitHub token", regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}\b`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{"a Stripe secret key", regexp.MustCompile(`\b[rs]k_(live|test)_[A-Za-z0-9]{16,}\b`)},
	{"a private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
	{"a JWT", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}`)},
	{"a URL with a password", regexp.MustCompile(`://[^/\s:@]+:[^/\s@]+@`)},
}

// secretLooking says why v looks like a secret, or "".
func secretLooking(v string) string {
	for _, k := range keyFormats {
		if k.re.MatchString(v) {
			return k.name
		}
	}
	if len(v) >= 24 && !strings.ContainsAny(v, " /") && entropy(v) >= 4.2 {
		return "a long random-looking string"
	}
	return ""
}

// entropy is the Shannon entropy of s in bits per character.
func entropy(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// goVersion is a released Go toolchain's version: go1.MINOR.PATCH.
type goVersion struct{ minor, patch int }

// parseGo reads "go1.26.8" (and "go1.21", patch 0); a pre-release
// ("go1.27rc1") or anything else is not a release.
func parseGo(s string) (goVersion, bool) {
	rest, ok := strings.CutPrefix(s, "go1.")
	if !ok {
		return goVersion{}, false
	}
	minor, patch, _ := strings.Cut(rest, ".")
	var v goVersion
	var err error
	if v.minor, err = strconv.Atoi(minor); err != nil || v.minor < 0 {
		return goVersion{}, false
	}
	if patch != "" {
		if v.patch, err = strconv.Atoi(patch); err != nil || v.patch < 0 {
			return goVersion{}, false
		}
	}
	return v, true
}

// toolchainCheck compares the toolchain that built a function with those
// the node knows of. Go supports a release until two newer ones are out
// (go.dev/doc/devel/release): a minor two behind the newest known is
// unsupported (high); an older patch of a supported minor misses fixes
// (medium).
func toolchainCheck(built string, known []string) (sev, evidence, fix string) {
	b, ok := parseGo(built)
	if !ok {
		return "", "", ""
	}
	newest, newestPatch := b, b
	for _, k := range known {
		v, ok := parseGo(k)
		if !ok {
			continue
		}
		if v.minor > newest.minor || v.minor == newest.minor && v.patch > newest.patch {
			newest = v
		}
		if v.minor == b.minor && v.patch > newestPatch.patch {
			newestPatch = v
		}
	}
	name := func(v goVersion) string { return fmt.Sprintf("go1.%d.%d", v.minor, v.patch) }
	switch {
	case newest.minor-b.minor >= 2:
		return High, fmt.Sprintf("built with %s; Go supports only its two newest releases, and %s is known here", built, name(newest)),
			"rebuild with " + name(newest) + " and redeploy"
	case newestPatch.patch > b.patch:
		return Medium, fmt.Sprintf("built with %s; %s is known here, with the fixes since", built, name(newestPatch)),
			"rebuild with " + name(newestPatch) + " (or newer) and redeploy"
	}
	return "", "", ""
}

// maxModuleSecrets bounds what one module reports.
const maxModuleSecrets = 20

// ModuleSecrets scans a module's data for secret-looking strings: a known
// key format anywhere, or a random-looking value right after a label that
// says it is one (api_key=, token:, password=, Bearer ...). It says what and
// where, never the value.
//
// A bare random string is not reported: the Go linker packs a module's
// strings back to back with nothing between them, and its tables and
// packed words ("SunMonTueWed", "SHA256-RSASHA384") pass any plain entropy
// test. Measured on the examples: a plain entropy rule (32 characters of
// 4.5 bits, mixed case and digits) fired on every Go module, the labelled
// rule on none.
func ModuleSecrets(wasm []byte) []string {
	var f secretFindings
	inventory.DataStrings(wasm, 16, func(offset int, s []byte) { scanText(s, offset, f.report) })
	return f.out
}

// ScriptSecrets is ModuleSecrets for a JavaScript bundle: the same
// formats and labels over its text.
func ScriptSecrets(script []byte) []string {
	var f secretFindings
	scanText(script, 0, f.report)
	return f.out
}

// secretFindings keeps the first finding of each kind, at most
// maxModuleSecrets.
type secretFindings struct {
	out  []string
	seen map[string]bool
}

func (f *secretFindings) report(what string, offset int) {
	if len(f.out) >= maxModuleSecrets || f.seen[what] {
		return
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	f.seen[what] = true
	f.out = append(f.out, fmt.Sprintf("%s at byte %#x", what, offset))
}

// scanText reports the secret-looking strings of s, which starts at
// offset.
func scanText(s []byte, offset int, report func(what string, offset int)) {
	for _, k := range keyFormats {
		if loc := k.re.FindIndex(s); loc != nil {
			report(k.name, offset+loc[0])
		}
	}
	for _, m := range labelled.FindAllSubmatchIndex(s, -1) {
		if v := s[m[2]:m[3]]; randomValue(string(v)) {
			report("a random-looking value labelled as a secret", offset+m[2])
		}
	}
}

// labelled is a secret's label, then its value.
var labelled = regexp.MustCompile(`(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|bearer)["']?\s*[:= ]\s*["']?([A-Za-z0-9+/=_.-]{20,256})`)

// randomValue: long, letters and digits mixed, 3.5 bits a character or
// more; not a word, a name or a placeholder.
func randomValue(v string) bool {
	letters := strings.IndexFunc(v, func(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }) >= 0
	digits := strings.IndexFunc(v, func(r rune) bool { return '0' <= r && r <= '9' }) >= 0
	return letters && digits && entropy(v) >= 3.5
}
