package inventory

import (
	"bytes"
	"encoding/json"
	"path"
	"reflect"
	"slices"
	"testing"
)

// sample is an inventory with a component of each kind CycloneDX writes.
var sample = Inventory{
	GoVersion: "go1.26.8",
	Main:      "example.com/contact",
	Components: []Component{
		{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.3.5", Source: "go build info"},
		{Ecosystem: "Go", Name: "stdlib", Version: "1.26.8", Source: "go build info"},
		{Ecosystem: "Go", Name: "github.com/docker/docker", Version: "v24.0.7+incompatible", Source: "lockfile:go.sum"},
		{Ecosystem: "npm", Name: "@babel/core", Version: "7.24.0", Source: "sbom:app.cdx.json"},
		{Ecosystem: "npm", Name: "lodash", Version: "4.17.20", Source: "lockfile:package-lock.json"},
		{Ecosystem: "npm", Name: "lodash", Version: "4.17.20", Source: "sbom:app.cdx.json"},
		{Ecosystem: "PyPI", Name: "Django", Version: "3.2.4", Source: "lockfile:requirements.txt"},
		{Ecosystem: "crates.io", Name: "serde", Version: "1.0.130", Source: "lockfile:Cargo.lock"},
		{Ecosystem: "Maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Source: "sbom:app.spdx.json"},
		{Ecosystem: "", Name: "vendored-widget", Version: "0.9.1", Source: "sbom:app.cdx.json"},
		{Ecosystem: "npm", Name: "a//b", Version: "1.0.0", Source: "lockfile:package-lock.json"},
	},
}

func TestCycloneDX(t *testing.T) {
	inv := sample
	inv.Components = slices.Clone(sample.Components)
	b, err := CycloneDX("contact", "7", &inv)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "cyclonedx/contact.cdx.json", b)
	if !reflect.DeepEqual(inv.Components, sample.Components) {
		t.Errorf("CycloneDX changed the inventory's components")
	}
	// The same inventory in another order is the same document.
	slices.Reverse(inv.Components)
	again, err := CycloneDX("contact", "7", &inv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Errorf("CycloneDX is not deterministic:\n%s\n%s", b, again)
	}
	other, err := CycloneDX("contact", "8", &inv)
	if err != nil {
		t.Fatal(err)
	}
	if serial(t, other) == serial(t, b) {
		t.Errorf("two versions of a function have the same serial number %s", serial(t, b))
	}
}

func serial(tb testing.TB, b []byte) string {
	tb.Helper()
	var doc struct{ SerialNumber string }
	if err := json.Unmarshal(b, &doc); err != nil {
		tb.Fatal(err)
	}
	return doc.SerialNumber
}

func TestCycloneDXRefused(t *testing.T) {
	if _, err := CycloneDX("fn", "1", nil); err == nil {
		t.Error("CycloneDX(nil inventory) = nil error")
	}
	if _, err := CycloneDX("", "1", &Inventory{}); err == nil {
		t.Error("CycloneDX(empty name) = nil error")
	}
	b, err := CycloneDX("empty", "", &Inventory{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ParseSBOM("empty.cdx.json", b)
	if err != nil || len(cs) != 0 {
		t.Errorf("ParseSBOM(CycloneDX of an empty inventory) = %v, %v; want no components", cs, err)
	}
}

// TestCycloneDXRoundTrip writes what every parser found, and reads it back.
func TestCycloneDXRoundTrip(t *testing.T) {
	invs := map[string]*Inventory{"sample": &sample}
	wasm, err := FromWasm(buildGuest(t, "vulnerable"))
	if err != nil {
		t.Fatal(err)
	}
	invs["vulnerable guest"] = wasm
	for _, file := range []string{"sbom/app.cdx.json", "sbom/app.spdx.json", "sbom/legacy.spdx.json", "sbom/minimal-1.6.cdx.json"} {
		cs, err := ParseSBOM(path.Base(file), readTestdata(t, file))
		if err != nil {
			t.Fatal(err)
		}
		invs[file] = &Inventory{Components: cs}
	}
	for _, file := range []string{"lock/npm-v1/package-lock.json", "lock/npm-v3/package-lock.json", "lock/cargo/Cargo.lock",
		"lock/poetry/poetry.lock", "lock/pip/requirements.txt", "lock/gosum/go.sum"} {
		cs, err := ParseLockFile(path.Base(file), readTestdata(t, file))
		if err != nil {
			t.Fatal(err)
		}
		invs[file] = &Inventory{Components: cs}
	}
	for name, inv := range invs {
		t.Run(name, func(t *testing.T) {
			checkRoundTrip(t, inv)
		})
	}
}

// checkRoundTrip fails unless ParseSBOM reads CycloneDX(inv) back to inv's
// components, bar Source.
func checkRoundTrip(tb testing.TB, inv *Inventory) {
	tb.Helper()
	b, err := CycloneDX("fn", "1", inv)
	if err != nil {
		tb.Fatal(err)
	}
	got, err := ParseSBOM("fn.cdx.json", b)
	if err != nil {
		tb.Fatalf("ParseSBOM(CycloneDX(...)): %v\n%s", err, b)
	}
	want := stripSources(inv.Components)
	if got := stripSources(got); !slices.Equal(got, want) {
		tb.Errorf("ParseSBOM(CycloneDX(inv)) =\n%s\nwant\n%s", render(got), render(want))
	}
}

func stripSources(cs []Component) []Component {
	out := make([]Component, len(cs))
	for i, c := range cs {
		c.Source = ""
		out[i] = c
	}
	return normalize(out)
}
