package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// The CycloneDX 1.5 JSON that CycloneDX writes. Field order is the order
// of output.
type (
	cdxBOM struct {
		Schema       string         `json:"$schema"`
		BOMFormat    string         `json:"bomFormat"`
		SpecVersion  string         `json:"specVersion"`
		SerialNumber string         `json:"serialNumber"`
		Version      int            `json:"version"`
		Metadata     cdxMetadata    `json:"metadata"`
		Components   []cdxComponent `json:"components"`
	}
	cdxMetadata struct {
		Tools     cdxTools     `json:"tools"`
		Component cdxComponent `json:"component"`
	}
	cdxTools struct {
		Components []cdxComponent `json:"components"`
	}
	cdxComponent struct {
		Type       string        `json:"type"`
		BOMRef     string        `json:"bom-ref,omitempty"`
		Group      string        `json:"group,omitempty"`
		Name       string        `json:"name"`
		Version    string        `json:"version,omitempty"`
		PURL       string        `json:"purl,omitempty"`
		Properties []cdxProperty `json:"properties,omitempty"`
	}
	cdxProperty struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)

// CycloneDX returns a CycloneDX 1.5 JSON SBOM of the function name at
// version, made of inv: the function is metadata.component, and each
// component is a library with a purl where its ecosystem has a purl type.
// The output is deterministic: no timestamp, components in Inventory order
// (sorted and de-duplicated again here; one that was found in several
// places is one component with a moat:source property for each), and a
// serial number derived from the content. ParseSBOM reads it back to the
// same components, bar Source. It fails only for a nil inv or an empty name.
func CycloneDX(name, version string, inv *Inventory) ([]byte, error) {
	if inv == nil {
		return nil, errors.New("cyclonedx: nil inventory")
	}
	if name == "" {
		return nil, errors.New("cyclonedx: empty function name")
	}
	comps := normalize(slices.Clone(inv.Components))

	fn := cdxComponent{Type: "application", BOMRef: "moat:function", Name: name, Version: version}
	if inv.Main != "" {
		fn.Properties = append(fn.Properties, cdxProperty{Name: "moat:go:main", Value: inv.Main})
	}
	if inv.GoVersion != "" {
		fn.Properties = append(fn.Properties, cdxProperty{Name: "moat:go:version", Value: inv.GoVersion})
	}
	bom := cdxBOM{
		Schema:      "http://cyclonedx.org/schema/bom-1.5.schema.json",
		BOMFormat:   "CycloneDX",
		SpecVersion: "1.5",
		Version:     1,
		Metadata: cdxMetadata{
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "moat"}}},
			Component: fn,
		},
		Components: []cdxComponent{},
	}

	h := sha256.New()
	for _, s := range []string{name, version, inv.Main, inv.GoVersion} {
		h.Write([]byte(strconv.Quote(s)))
	}
	refs := map[string]bool{fn.BOMRef: true}
	for len(comps) > 0 {
		c := comps[0]
		n := 1 // components that differ from c only in Source
		for n < len(comps) && comps[n].Ecosystem == c.Ecosystem && comps[n].Name == c.Name && comps[n].Version == c.Version {
			n++
		}
		same := comps[:n]
		comps = comps[n:]
		if c.Name == "" {
			continue
		}
		for _, s := range []string{c.Ecosystem, c.Name, c.Version} {
			h.Write([]byte(strconv.Quote(s)))
		}
		out := cdxComponent{Type: "library", Name: c.Name, Version: c.Version, PURL: purlOf(c)}
		switch c.Ecosystem {
		case "npm":
			if out.PURL == "" {
				break // a name too odd to split
			}
			if g, rest, ok := strings.Cut(c.Name, "/"); ok && strings.HasPrefix(g, "@") {
				out.Group, out.Name = g, rest
			}
		case "Maven":
			if out.PURL == "" {
				break
			}
			if g, rest, ok := strings.Cut(c.Name, ":"); ok {
				out.Group, out.Name = g, rest
			}
		}
		if c.Ecosystem != "" && out.PURL == "" {
			out.Properties = append(out.Properties, cdxProperty{Name: "moat:ecosystem", Value: c.Ecosystem})
		}
		for _, s := range same {
			if s.Source != "" {
				out.Properties = append(out.Properties, cdxProperty{Name: "moat:source", Value: s.Source})
			}
		}
		out.BOMRef = out.PURL
		if out.BOMRef == "" {
			out.BOMRef = "component:" + c.Ecosystem + ":" + c.Name + "@" + c.Version
		}
		base := out.BOMRef
		for n := 2; refs[out.BOMRef]; n++ {
			out.BOMRef = base + "#" + strconv.Itoa(n)
		}
		refs[out.BOMRef] = true
		bom.Components = append(bom.Components, out)
	}
	bom.SerialNumber = "urn:uuid:" + uuid8(h.Sum(nil))

	b, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// uuid8 formats the first 16 bytes of sum as an RFC 9562 version 8 UUID.
func uuid8(sum []byte) string {
	var u [16]byte
	copy(u[:], sum)
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
