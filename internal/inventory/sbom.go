package inventory

import (
	"strings"
)

// maxNesting is how deep CycloneDX components may nest in one another.
const maxNesting = 32

// ParseSBOM reads the components of an SBOM: CycloneDX JSON (specVersion 1.4
// to 1.6) or SPDX JSON (SPDX-2.2, SPDX-2.3), told apart by content. A
// component's ecosystem, name and version come from its purl (pkg:golang,
// pkg:npm with an @scope, pkg:pypi, pkg:cargo and other types OSV names);
// without one, or with a purl of a type OSV does not name, the name and
// version fields are used and the ecosystem is left "" (or taken from a
// "moat:ecosystem" property, which CycloneDX writes for a name no purl can
// carry). CycloneDX components of type file, data, machine-learning-model
// or cryptographic-asset count only with a purl OSV knows. The package the
// document describes is left out. Each component's Source is "sbom:" and
// name. The result is sorted and has no duplicates.
//
// Input over MaxFileSize or MaxComponents, malformed JSON, a field of the
// wrong type, or a document that is neither format (or another version of
// one) is refused with an *Error naming the file.
func ParseSBOM(name string, b []byte) ([]Component, error) {
	if err := checkSize(name, b); err != nil {
		return nil, err
	}
	p := &sbomParser{
		r: newJSONReader(name, b),
		c: &collector{file: name, source: "sbom:" + name},
	}
	if err := p.document(); err != nil {
		return nil, err
	}
	cdx := p.bomFormat != ""
	spdx := p.spdxVersion != ""
	switch {
	case cdx && spdx:
		return nil, malformed(name, 0, "both bomFormat (CycloneDX) and spdxVersion (SPDX) are set")
	case cdx:
		if p.bomFormat != "CycloneDX" {
			return nil, unsupported(name, "bomFormat %q is not CycloneDX", p.bomFormat)
		}
		switch p.specVersion {
		case "1.4", "1.5", "1.6":
		default:
			return nil, unsupported(name, "CycloneDX specVersion %q (want 1.4, 1.5 or 1.6)", p.specVersion)
		}
		if len(p.packages) > 0 {
			return nil, malformed(name, 0, "a CycloneDX document with SPDX packages")
		}
	case spdx:
		switch p.spdxVersion {
		case "SPDX-2.2", "SPDX-2.3":
		default:
			return nil, unsupported(name, "spdxVersion %q (want SPDX-2.2 or SPDX-2.3)", p.spdxVersion)
		}
		if len(p.c.out) > 0 {
			return nil, malformed(name, 0, "an SPDX document with CycloneDX components")
		}
		for _, pkg := range p.packages {
			if p.described[pkg.id] {
				continue
			}
			if err := p.add(pkg.purl, pkg.name, pkg.version); err != nil {
				return nil, err
			}
		}
	default:
		return nil, unsupported(name, "neither a CycloneDX document (bomFormat) nor an SPDX one (spdxVersion)")
	}
	return normalize(p.c.out), nil
}

// sbomParser reads both formats in one pass, since the keys that say which
// one a document is may come after its components.
type sbomParser struct {
	r *jsonReader
	c *collector

	bomFormat, specVersion string // CycloneDX
	spdxVersion            string // SPDX
	packages               []spdxPackage
	described              map[string]bool // SPDXIDs the document describes
}

// spdxPackage is what ParseSBOM keeps of an SPDX package until it knows
// which packages the document describes.
type spdxPackage struct {
	id, name, version, purl string
}

func (p *sbomParser) document() error {
	r := p.r
	top := false
	err := r.object("document", func(key string) error {
		top = true
		var err error
		switch key {
		case "bomFormat":
			p.bomFormat, err = r.str(key)
		case "specVersion":
			p.specVersion, err = r.scalar(key)
		case "components":
			err = r.array(key, func(i int) error { return p.cdxComponent(index(key, i), 0) })
		case "spdxVersion":
			p.spdxVersion, err = r.str(key)
		case "packages":
			err = r.array(key, func(i int) error { return p.spdxPackage(index(key, i)) })
		case "documentDescribes":
			err = r.array(key, func(i int) error {
				id, err := r.str(index(key, i))
				if err == nil {
					err = p.describe(id)
				}
				return err
			})
		case "relationships":
			err = r.array(key, func(i int) error { return p.relationship(index(key, i)) })
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if !top && p.bomFormat == "" {
		// null or {}: say so rather than "neither format".
		return malformed(r.file, 1, "empty document")
	}
	return r.end()
}

// cdxComponent reads one CycloneDX component and those nested in it.
func (p *sbomParser) cdxComponent(path string, level int) error {
	if level >= maxNesting {
		return tooLarge(p.r.file, p.r.line(), "%s: components nested deeper than %d", path, maxNesting)
	}
	r := p.r
	var name, group, version, purl, eco, typ string
	seen := false
	err := r.object(path, func(key string) error {
		seen = true
		var err error
		switch key {
		case "type":
			typ, err = r.str(field(path, key))
		case "name":
			name, err = r.str(field(path, key))
		case "group":
			group, err = r.str(field(path, key))
		case "version":
			version, err = r.scalar(field(path, key))
		case "purl":
			purl, err = r.str(field(path, key))
		case "components":
			sub := field(path, key)
			err = r.array(sub, func(i int) error { return p.cdxComponent(index(sub, i), level+1) })
		case "properties":
			sub := field(path, key)
			err = r.array(sub, func(i int) error {
				n, v, err := p.property(index(sub, i))
				if n == "moat:ecosystem" {
					eco = v
				}
				return err
			})
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil || !seen {
		return err
	}
	if name != "" && group != "" {
		name = group + "/" + name
	}
	pu, ok := parsePURL(purl)
	if !ok || ecosystemOf(pu.typ) == "" {
		switch typ {
		case "file", "data", "machine-learning-model", "cryptographic-asset":
			return nil // not a package, unless its purl says it is one
		}
	}
	if !ok && eco != "" && name != "" {
		// What CycloneDX writes for a name no purl can carry.
		return p.c.add(eco, name, version)
	}
	return p.add(purl, name, version)
}

// property reads one CycloneDX property.
func (p *sbomParser) property(path string) (name, value string, err error) {
	r := p.r
	err = r.object(path, func(key string) error {
		var err error
		switch key {
		case "name":
			name, err = r.str(field(path, key))
		case "value":
			value, err = r.str(field(path, key))
		default:
			err = r.skip()
		}
		return err
	})
	return name, value, err
}

// spdxPackage reads one SPDX package.
func (p *sbomParser) spdxPackage(path string) error {
	r := p.r
	var pkg spdxPackage
	err := r.object(path, func(key string) error {
		var err error
		switch key {
		case "SPDXID":
			pkg.id, err = r.str(field(path, key))
		case "name":
			pkg.name, err = r.str(field(path, key))
		case "versionInfo":
			pkg.version, err = r.scalar(field(path, key))
		case "externalRefs":
			sub := field(path, key)
			err = r.array(sub, func(i int) error {
				var typ, loc string
				ref := index(sub, i)
				err := r.object(ref, func(key string) error {
					var err error
					switch key {
					case "referenceType":
						typ, err = r.str(field(ref, key))
					case "referenceLocator":
						loc, err = r.str(field(ref, key))
					default:
						err = r.skip()
					}
					return err
				})
				if typ == "purl" && pkg.purl == "" {
					pkg.purl = loc
				}
				return err
			})
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	switch pkg.version {
	case "NOASSERTION", "NONE":
		pkg.version = ""
	}
	if pkg.name == "" && pkg.purl == "" {
		return nil
	}
	if len(p.packages) >= MaxComponents {
		return tooLarge(r.file, r.line(), "more than %d packages", MaxComponents)
	}
	p.packages = append(p.packages, pkg)
	return nil
}

// relationship reads one SPDX relationship, keeping what the document
// describes.
func (p *sbomParser) relationship(path string) error {
	r := p.r
	var from, typ, to string
	err := r.object(path, func(key string) error {
		var err error
		switch key {
		case "spdxElementId":
			from, err = r.str(field(path, key))
		case "relationshipType":
			typ, err = r.str(field(path, key))
		case "relatedSpdxElement":
			to, err = r.str(field(path, key))
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case typ == "DESCRIBES" && from == "SPDXRef-DOCUMENT":
		return p.describe(to)
	case typ == "DESCRIBED_BY" && to == "SPDXRef-DOCUMENT":
		return p.describe(from)
	}
	return nil
}

// describe records that the document describes the package id.
func (p *sbomParser) describe(id string) error {
	if p.described == nil {
		p.described = make(map[string]bool)
	}
	if len(p.described) >= MaxComponents {
		return tooLarge(p.r.file, p.r.line(), "more than %d described packages", MaxComponents)
	}
	p.described[id] = true
	return nil
}

// add records a component from its purl, or else from its name and
// version with the ecosystem unknown.
func (p *sbomParser) add(purl, name, version string) error {
	if pu, ok := parsePURL(strings.TrimSpace(purl)); ok {
		if eco, n, v, ok := pu.component(); ok {
			return p.c.add(eco, n, v)
		}
		if name == "" {
			name = pu.name
			if pu.namespace != "" {
				name = pu.namespace + "/" + pu.name
			}
		}
		if version == "" {
			version = pu.version
		}
	}
	if name == "" {
		return nil
	}
	return p.c.add("", name, version)
}
