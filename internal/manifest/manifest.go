// Package manifest parses and validates moat.yaml, the description of one function.
//
// A manifest names the function, its WebAssembly module, the non-secret
// environment it sees, the limits and budgets it runs under, how it is
// reached over HTTP and what it may touch (KV buckets, secrets, egress
// prefixes, other functions). Everything not granted is denied.
//
// The reading is strict on purpose, because a manifest is a security
// boundary and a typo must not silently widen or drop a limit:
//
//   - Unknown fields, duplicate keys, wrong kinds (a list where a mapping is
//     expected), aliases, custom tags and more than one document are errors.
//     Errors name the line and the field (see [Error]).
//   - A field whose value is null (written "key:" with nothing after it, "~"
//     or "null") is treated as absent and gets its default. A null in a list
//     or as an env value is an error instead, so null never turns into a
//     string by accident; quote it if the string is meant.
//   - A scalar is read as its literal text: "memory: 1048576" is a size in
//     bytes and "env: {DEBUG: true}" sets DEBUG to "true".
//   - Sizes are binary (B, KiB, MiB, GiB); "64MB" is refused rather than
//     guessed at.
//
// Parse reads bytes and never touches files; Load reads moat.yaml from a
// folder and also checks that the files the manifest names are regular
// files inside that folder.
package manifest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// FileName is the name of the manifest file in a function's folder.
const FileName = "moat.yaml"

// maxBytes is the largest manifest Parse reads.
const maxBytes = 64 << 10

// allMethods lists the HTTP methods a function may accept, in the order
// they are usually written. An empty HTTP.Methods means all of them.
var allMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Manifest is the parsed description of one function. The zero value is
// not valid: Parse fills in defaults for every field left out, and Validate
// reports what is missing or wrong on a Manifest built any other way (for
// example decoded from JSON).
//
// A Manifest is a plain value; it is safe for concurrent reads.
type Manifest struct {
	// Name identifies the function: a lower-case letter, then up to 62
	// lower-case letters, digits or hyphens. Required.
	Name string `json:"name"`
	// Module is the path of the WebAssembly module, relative to the
	// manifest's folder and inside it; or, ending in .js, of a JavaScript
	// bundle (moat build writes one), which Moat's JavaScript runtime runs.
	// Required.
	Module string `json:"module"`
	// Owner is free text naming who is responsible for the function.
	Owner string `json:"owner,omitempty"`
	// Env is the non-secret configuration the function sees as environment
	// variables. Nil when empty.
	Env map[string]string `json:"env,omitempty"`
	// Limits bound each invocation.
	Limits Limits `json:"limits"`
	// Budget caps spending over time. The zero value sets no budget.
	Budget Budget `json:"budget,omitzero"`
	// HTTP says who may call the function over HTTP and with which methods.
	HTTP HTTP `json:"http"`
	// Input describes the request body the function accepts.
	Input Input `json:"input,omitzero"`
	// Permissions grants access to resources; the zero value grants none.
	Permissions Permissions `json:"permissions,omitzero"`
	// SBOM is the path of a software bill of materials for the module,
	// relative to the manifest's folder. Optional.
	SBOM string `json:"sbom,omitempty"`
	// LockFiles lists lock files of the module's dependencies
	// (package-lock.json, Cargo.lock, requirements.txt, poetry.lock,
	// go.sum), relative to the manifest's folder. Optional.
	LockFiles []string `json:"lockfiles,omitempty"`
	// Vulnerabilities tightens the node's vulnerability policy for this
	// function. The zero value keeps the node's.
	Vulnerabilities VulnPolicy `json:"vulnerabilities,omitzero"`
	// Triggers are the function's event sources besides HTTP; nil is none.
	Triggers []Trigger `json:"triggers,omitempty"`
}

// VulnPolicy is a function's own vulnerability policy; it can only tighten
// the node's.
type VulnPolicy struct {
	// Block is the lowest severity ("low", "medium", "high", "critical")
	// of an advisory with a fixed version that refuses a deploy.
	Block string `json:"block,omitempty"`
}

// Limits bound a single invocation and the rate of invocations.
// Parse's defaults are Memory 64MiB, Timeout 10s, Concurrency 10,
// Body 1MiB, Response 6MiB and no rate limits.
type Limits struct {
	// Memory caps the guest's linear memory: 1MiB to 4GiB, a multiple of
	// the 64KiB WebAssembly page.
	Memory Size
	// Timeout ends an invocation that runs longer: 1ms to 15m.
	Timeout time.Duration
	// Concurrency caps invocations running at once: 1 to 10000.
	Concurrency int
	// Rate caps invocations from all callers; the zero value is unlimited.
	Rate Rate
	// RatePerCaller caps invocations from one caller; the zero value is
	// unlimited.
	RatePerCaller Rate
	// Body caps the request body: 0 to 64MiB.
	Body Size
	// Response caps what the function writes back, CGI headers and body:
	// 1KiB to 64MiB.
	Response Size
}

// Budget caps what a function may spend over a window of time. A zero
// BudgetAmount sets no cap.
type Budget struct {
	// GBSeconds caps memory times run time, in gigabyte-seconds.
	GBSeconds BudgetAmount `json:"gb_seconds,omitzero"`
	// Invocations caps the number of invocations; its Amount is a whole
	// number.
	Invocations BudgetAmount `json:"invocations,omitzero"`
}

// HTTP says how a function is reached over HTTP.
type HTTP struct {
	// Auth is "public" (anyone), "key" (an API key naming the function),
	// "jwt" (a signed token) or "internal" (no outside caller: only the
	// functions in Callers). Parse's default is "key".
	Auth string `json:"auth"`
	// Callers lists the functions that may call this one through a host
	// call (their own manifest must grant it in permissions.invoke). Nil
	// means none may.
	Callers []string `json:"callers,omitempty"`
	// Methods lists the accepted methods, upper case, from GET, HEAD, POST,
	// PUT, PATCH, DELETE and OPTIONS. Nil means all of those.
	Methods []string `json:"methods,omitempty"`
}

// Input describes the request body a function accepts.
type Input struct {
	// Schema is the path of a JSON Schema (2020-12) for the body, relative
	// to the manifest's folder. Empty means no schema check.
	Schema string `json:"schema,omitempty"`
	// ContentTypes lists accepted media types, like "application/json".
	// Nil means any.
	ContentTypes []string `json:"content_types,omitempty"`
}

// Permissions grants a function access to resources. Anything not listed
// is denied; the zero value grants nothing.
type Permissions struct {
	// KV maps a bucket name to "read", "write" or "read-write".
	KV map[string]string `json:"kv,omitempty"`
	// Objects maps an object bucket's name to "read", "write" or
	// "read-write", as KV does.
	Objects map[string]string `json:"objects,omitempty"`
	// Secrets lists the secrets the function may read, by name.
	Secrets []string `json:"secrets,omitempty"`
	// Egress lists URL prefixes ("https://host/path/") the function may
	// call.
	Egress []string `json:"egress,omitempty"`
	// Invoke lists the functions this one may call, by name.
	Invoke []string `json:"invoke,omitempty"`
	// Publish lists the event subjects (or patterns) the function may
	// publish on.
	Publish []string `json:"publish,omitempty"`
}

// defaults returns a Manifest holding the safe defaults for every field
// that has one.
func defaults() Manifest {
	return Manifest{
		Limits: Limits{
			Memory:      64 * MiB,
			Timeout:     10 * time.Second,
			Concurrency: 10,
			Body:        1 * MiB,
			Response:    6 * MiB,
		},
		HTTP: HTTP{Auth: "key"},
	}
}

// Parse reads a manifest from src, checks every value and fills in
// defaults for the fields left out. It does not read the files the
// manifest names; Load does.
//
// Errors are of type *Error, naming the line and, unless the problem is
// with the whole document, the field; File is left empty. Input larger
// than 64KiB is refused.
func Parse(src []byte) (*Manifest, error) {
	m, _, err := parse(src)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Methods returns the HTTP methods the function accepts: http.methods, or
// every method a function may accept when that is empty.
func (m *Manifest) Methods() []string {
	if len(m.HTTP.Methods) == 0 {
		return slices.Clone(allMethods)
	}
	return m.HTTP.Methods
}

// AllowsMethod reports whether the function accepts the HTTP method
// (upper case, as on the wire).
func (m *Manifest) AllowsMethod(method string) bool {
	if len(m.HTTP.Methods) == 0 {
		return slices.Contains(allMethods, method)
	}
	return slices.Contains(m.HTTP.Methods, method)
}

// JavaScript reports whether the function is a JavaScript bundle, run by
// Moat's JavaScript runtime, rather than a WebAssembly module.
func (m *Manifest) JavaScript() bool { return strings.HasSuffix(m.Module, ".js") }

// MinJavaScriptMemory is the least limits.memory of a JavaScript function:
// the runtime's image (about 17MiB) and the 8MiB of heap it keeps free so
// that requests do not grow the memory (docs/javascript.md), with room.
const MinJavaScriptMemory = 32 * MiB

// Files returns the paths of the files the manifest names, relative to its
// folder: the module first, then the input schema and the SBOM if set.
func (m *Manifest) Files() []string {
	files := []string{m.Module}
	for _, p := range append([]string{m.Input.Schema, m.SBOM}, m.LockFiles...) {
		if p != "" && !slices.Contains(files, p) {
			files = append(files, p)
		}
	}
	return files
}

// Validate checks every rule Parse checks on m as it is, without applying
// defaults: a zero Memory, for example, is an error rather than 64MiB. It
// is meant for a Manifest that did not come from Parse, such as one decoded
// from JSON.
//
// The error is an *Error naming the field, with Line 0; Validate reports
// the first problem it finds.
func (m *Manifest) Validate() error {
	if m == nil {
		return &Error{Err: errors.New("no manifest")}
	}
	if err := m.validate(); err != nil {
		return err
	}
	return nil
}

func (m *Manifest) validate() *Error {
	bad := func(field string, err error) *Error {
		if err == nil {
			return nil
		}
		return &Error{Field: field, Err: err}
	}
	if m.Name == "" {
		return bad("name", errRequired)
	}
	if e := bad("name", checkName(m.Name)); e != nil {
		return e
	}
	if m.Module == "" {
		return bad("module", errRequired)
	}
	if e := bad("module", checkRelPath(m.Module)); e != nil {
		return e
	}
	if e := bad("owner", checkOwner(m.Owner)); e != nil {
		return e
	}
	if e := bad("env", checkEnvCount(len(m.Env))); e != nil {
		return e
	}
	for _, k := range slices.Sorted(maps.Keys(m.Env)) {
		if e := bad("env", checkEnvKey(k)); e != nil {
			return e
		}
		if e := bad("env."+k, checkEnvValue(m.Env[k])); e != nil {
			return e
		}
	}

	l := m.Limits
	for _, c := range []struct {
		field string
		err   error
	}{
		{"limits.memory", checkMemory(l.Memory)},
		{"limits.timeout", checkTimeout(l.Timeout)},
		{"limits.concurrency", checkConcurrency(l.Concurrency)},
		{"limits.rate", l.Rate.check()},
		{"limits.rate_per_caller", l.RatePerCaller.check()},
		{"limits.body", checkBody(l.Body)},
		{"limits.response", checkResponse(l.Response)},
		{"budget.gb_seconds", m.Budget.GBSeconds.check(false)},
		{"budget.invocations", m.Budget.Invocations.check(true)},
		{"http.auth", checkAuth(m.HTTP.Auth)},
	} {
		if e := bad(c.field, c.err); e != nil {
			return e
		}
	}

	if m.JavaScript() && l.Memory < MinJavaScriptMemory {
		if e := bad("limits.memory", fmt.Errorf("a JavaScript function needs at least %s (the runtime and the heap it keeps free for requests take about 26MiB); this one has %s", MinJavaScriptMemory, l.Memory)); e != nil {
			return e
		}
	}

	if e := validateList("http.methods", m.HTTP.Methods, checkMethod); e != nil {
		return e
	}
	if e := validateList("http.callers", m.HTTP.Callers, checkName); e != nil {
		return e
	}
	if m.Input.Schema != "" {
		if e := bad("input.schema", checkRelPath(m.Input.Schema)); e != nil {
			return e
		}
	}
	if e := validateList("input.content_types", m.Input.ContentTypes, checkContentType); e != nil {
		return e
	}

	p := m.Permissions
	for _, g := range []struct {
		field  string
		grants map[string]string
	}{{"permissions.kv", p.KV}, {"permissions.objects", p.Objects}} {
		for _, b := range slices.Sorted(maps.Keys(g.grants)) {
			if e := bad(g.field, checkBucket(b)); e != nil {
				return e
			}
			if e := bad(g.field+"."+b, checkAccess(g.grants[b])); e != nil {
				return e
			}
		}
	}
	for _, l := range []struct {
		field string
		items []string
		check func(string) error
	}{
		{"permissions.secrets", p.Secrets, checkSecret},
		{"permissions.egress", p.Egress, checkEgress},
		{"permissions.invoke", p.Invoke, checkName},
		{"permissions.publish", p.Publish, CheckSubjectPattern},
	} {
		if e := validateList(l.field, l.items, l.check); e != nil {
			return e
		}
	}

	if m.SBOM != "" {
		if e := bad("sbom", checkRelPath(m.SBOM)); e != nil {
			return e
		}
	}
	if e := validateList("lockfiles", m.LockFiles, checkLockFile); e != nil {
		return e
	}
	if len(m.Triggers) > MaxTriggers {
		return bad("triggers", fmt.Errorf("%d triggers: at most %d", len(m.Triggers), MaxTriggers))
	}
	if e := m.checkTriggers(); e != nil {
		return e
	}
	if m.Vulnerabilities.Block != "" {
		if e := bad("vulnerabilities.block", checkSeverity(m.Vulnerabilities.Block)); e != nil {
			return e
		}
	}
	return nil
}

// validateList checks each item and refuses duplicates.
func validateList(field string, items []string, check func(string) error) *Error {
	seen := make(map[string]int, len(items))
	for i, s := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := check(s); err != nil {
			return &Error{Field: f, Err: err}
		}
		if j, ok := seen[s]; ok {
			return &Error{Field: f, Err: fmt.Errorf("duplicate %q (also %s[%d])", s, field, j)}
		}
		seen[s] = i
	}
	return nil
}

// DeclaredEnv returns the declared environment as sorted KEY=VALUE pairs.
func (m *Manifest) DeclaredEnv() []string {
	env := make([]string, 0, len(m.Env))
	for _, k := range slices.Sorted(maps.Keys(m.Env)) {
		env = append(env, k+"="+m.Env[k])
	}
	return env
}
