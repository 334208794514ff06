// Package inventory tells what a deployed function is made of: the
// dependencies, named as OSV names them, that a deploy matches against the
// vulnerability database.
//
// It reads three kinds of evidence:
//
//   - FromWasm reads the Go build info that the Go linker leaves in a wasip1
//     module. The exact module list and toolchain are in the binary, so for a
//     Go function this is the authority.
//   - ParseSBOM reads a CycloneDX (1.4 to 1.6) or SPDX (2.2, 2.3) JSON
//     document shipped beside the module.
//   - ParseLockFile reads a lock file shipped beside the module:
//     package-lock.json (and npm-shrinkwrap.json), Cargo.lock,
//     requirements.txt, poetry.lock and go.sum.
//
// CycloneDX writes an Inventory back out as a CycloneDX 1.5 SBOM.
//
// Every input comes from an untrusted deployer. Files are capped at
// MaxFileSize bytes and MaxComponents components; JSON is read as a stream
// of tokens with a nesting limit, so no input costs much more memory than
// its own size plus the components it yields; TOML is measured before it is
// parsed. A refused input is an *Error naming the file, the line where known,
// and what is wrong; it wraps ErrMalformed, ErrTooLarge or ErrUnsupported.
//
// Some choices lean towards reporting too much rather than too little,
// because the result gates deploys on known vulnerabilities:
//
//   - go.sum lists every module version it holds, including those that
//     appear only in "/go.mod" lines (needed for the module graph, not
//     always built in). A Go module's build info is exact; go.sum is not.
//   - requirements.txt counts pinned lines whatever their environment
//     markers say.
//   - A Go module replaced by another (=>) is reported under the original
//     path with the replacement's version, as govulncheck does; when the
//     replacement is a directory, which has no version, the original
//     version is kept.
//
// Local code is left out: the root and workspace links of a
// package-lock.json, Cargo packages with no source, poetry directory
// dependencies, and the package an SBOM describes (metadata.component in
// CycloneDX, the DESCRIBES targets in SPDX). A Go main module is listed
// only when it has a real version (built with go install m@v, say), not
// "(devel)".
package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits on one input. Beyond them a parser returns an *Error wrapping
// ErrTooLarge.
const (
	// MaxFileSize is the largest SBOM or lock file the parsers read.
	MaxFileSize = 16 << 20
	// MaxComponents is the most components one input may yield.
	MaxComponents = 100_000
)

// Sentinel errors. Every error FromWasm, ParseSBOM and ParseLockFile return
// is an *Error wrapping one of them.
var (
	// ErrMalformed reports an input that is not what its name or content
	// says: bad JSON, TOML or wasm, or a field of the wrong type.
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge reports an input over one of the limits: size, count,
	// nesting or complexity.
	ErrTooLarge = errors.New("too large")
	// ErrUnsupported reports a well-formed input of a kind or version this
	// package does not read, such as an unknown lock file name or SPDX 3.
	ErrUnsupported = errors.New("unsupported")
)

// Component is one dependency, named as OSV names it.
type Component struct {
	// Ecosystem is the OSV ecosystem: "Go", "npm", "PyPI", "crates.io",
	// "Maven", "RubyGems", "NuGet", "Packagist", "Hex", "Pub", or "" when
	// unknown (an SBOM entry without a purl that says).
	Ecosystem string `json:"ecosystem"`
	// Name is the module path or package name as written: "golang.org/x/text",
	// "@babel/core", "Django". The Go standard library is "stdlib".
	Name string `json:"name"`
	// Version is as the ecosystem writes it. Go module versions keep their
	// leading "v" (v0.3.7); the Go standard library's has no "go" and no "v"
	// (1.26.8). It may be empty when an SBOM gives none.
	Version string `json:"version"`
	// Source says where the component was found: "go build info",
	// "sbom:app.cdx.json", "lockfile:package-lock.json".
	Source string `json:"source,omitempty"`
}

// Inventory is what one deployed function is made of.
type Inventory struct {
	// GoVersion is the toolchain that built a Go module, e.g. "go1.26.8";
	// "" for other modules.
	GoVersion string
	// Main is the main module path of a Go module.
	Main string
	// Components is sorted by ecosystem, name, version and source, without
	// duplicates.
	Components []Component
}

// Error reports an input this package refused: which file, where, and why.
type Error struct {
	// File is the name the input was given under, e.g. "package-lock.json",
	// or "wasm module" for FromWasm.
	File string
	// Line is the 1-based line of the problem, or 0 when it has none.
	Line int
	// Err says what is wrong. It wraps ErrMalformed, ErrTooLarge or
	// ErrUnsupported.
	Err error
}

// Error returns "FILE:LINE: what is wrong", or "FILE: what is wrong" when
// there is no line.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Err.Error())
	}
	return e.File + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// malformed returns an *Error wrapping ErrMalformed.
func malformed(file string, line int, format string, args ...any) error {
	return &Error{File: file, Line: line, Err: fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))}
}

// tooLarge returns an *Error wrapping ErrTooLarge.
func tooLarge(file string, line int, format string, args ...any) error {
	return &Error{File: file, Line: line, Err: fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))}
}

// unsupported returns an *Error wrapping ErrUnsupported.
func unsupported(file string, format string, args ...any) error {
	return &Error{File: file, Err: fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))}
}

// checkSize refuses an input over MaxFileSize.
func checkSize(file string, b []byte) error {
	if len(b) > MaxFileSize {
		return tooLarge(file, 0, "%d bytes, more than the limit of %d", len(b), MaxFileSize)
	}
	return nil
}

// collector gathers the distinct components of one input, up to
// MaxComponents.
type collector struct {
	file   string
	source string
	out    []Component
	seen   map[Component]bool
}

// add appends a component unless it is already there, refusing the input
// once it has too many.
func (c *collector) add(ecosystem, name, version string) error {
	k := Component{Ecosystem: ecosystem, Name: name, Version: version, Source: c.source}
	if c.seen[k] {
		return nil
	}
	if len(c.out) >= MaxComponents {
		return tooLarge(c.file, 0, "more than %d components", MaxComponents)
	}
	if c.seen == nil {
		c.seen = make(map[Component]bool)
	}
	c.seen[k] = true
	c.out = append(c.out, k)
	return nil
}

// compareComponents orders components by ecosystem, name, version, source.
func compareComponents(a, b Component) int {
	return cmp.Or(
		strings.Compare(a.Ecosystem, b.Ecosystem),
		strings.Compare(a.Name, b.Name),
		strings.Compare(a.Version, b.Version),
		strings.Compare(a.Source, b.Source),
	)
}

// normalize sorts cs and removes duplicates in place.
func normalize(cs []Component) []Component {
	slices.SortFunc(cs, compareComponents)
	return slices.Compact(cs)
}

// lineAt returns the 1-based line holding byte offset off of b.
func lineAt(b []byte, off int64) int {
	if off < 0 {
		off = 0
	}
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	n := 1
	for _, c := range b[:off] {
		if c == '\n' {
			n++
		}
	}
	return n
}
