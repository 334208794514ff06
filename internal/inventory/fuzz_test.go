package inventory

import (
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/testwasm"
)

func FuzzFromWasm(f *testing.F) {
	f.Add(testwasm.MinimalCGI())
	f.Add(testwasm.NoStart())
	f.Add(goModule{version: "go1.22.3", header: true, modinfo: modinfoText}.bytes())
	f.Add(goModule{version: "go1.22.3", modinfo: modinfoText, passive: true, producers: "go1.21rc2"}.bytes())
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x07\x01\x00\x41\x10\x0b\x01\x61"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		inv, err := FromWasm(wasm)
		if err != nil {
			return // refusing input is fine; panics and hangs are not
		}
		checkSorted(t, inv.Components)
		if inv.GoVersion != "" && !isGoVersion(inv.GoVersion) {
			t.Fatalf("FromWasm GoVersion = %q, not a Go version", inv.GoVersion)
		}
		for _, c := range inv.Components {
			if c.Ecosystem != "Go" || c.Source != "go build info" {
				t.Fatalf("FromWasm component %+v is not from Go build info", c)
			}
		}
	})
}

func FuzzParseSBOM(f *testing.F) {
	for _, file := range []string{"sbom/app.cdx.json", "sbom/app.spdx.json", "sbom/legacy.spdx.json", "sbom/minimal-1.4.cdx.json"} {
		f.Add(readTestdata(f, file))
	}
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"a","properties":[{"name":"moat:ecosystem","value":"npm"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseSBOM("fuzz.json", b)
		if err != nil {
			return
		}
		checkSorted(t, cs)
		if len(cs) > MaxComponents {
			t.Fatalf("ParseSBOM returned %d components, more than %d", len(cs), MaxComponents)
		}
		// What was read can be written and read back the same.
		checkRoundTrip(t, &Inventory{Components: cs})
	})
}

// lockNames are the names FuzzParseLockFile feeds its input under.
var lockNames = []string{"package-lock.json", "npm-shrinkwrap.json", "Cargo.lock", "poetry.lock", "requirements.txt", "go.sum", "yarn.lock"}

func FuzzParseLockFile(f *testing.F) {
	for _, file := range []string{
		"lock/npm-v1/package-lock.json", "lock/npm-v2/package-lock.json", "lock/npm-v3/package-lock.json",
		"lock/cargo/Cargo.lock", "lock/poetry/poetry.lock", "lock/pip/requirements.txt", "lock/gosum/go.sum",
	} {
		base := file[strings.LastIndexByte(file, '/')+1:]
		for i, n := range lockNames {
			if n == base {
				f.Add(uint8(i), readTestdata(f, file))
			}
		}
	}
	f.Add(uint8(3), []byte("a = \"\"\"\n[[[[\"\"\"\n"))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		name := lockNames[int(which)%len(lockNames)]
		cs, err := ParseLockFile(name, b)
		if err != nil {
			return
		}
		checkSorted(t, cs)
		for _, c := range cs {
			if c.Source != "lockfile:"+name || c.Name == "" || c.Version == "" {
				t.Fatalf("ParseLockFile(%s) component %+v", name, c)
			}
		}
		checkRoundTrip(t, &Inventory{Components: cs})
	})
}
