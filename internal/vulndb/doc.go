// Package vulndb is Moat's offline vulnerability database: OSV advisories
// (https://ossf.github.io/osv-schema/) for the Go, npm and PyPI ecosystems,
// indexed by package so that a deploy can check a function's dependencies
// without a network call.
//
// ParseOSV reads one record, Import reads osv.dev's all.zip or a folder of
// records into a DB, DB.Match says which advisories affect one dependency,
// and Store keeps the DB in the node's store across restarts.
//
// # Choices
//
// Versions are ordered per ecosystem behind one small interface (scheme):
// Go by golang.org/x/mod/semver (pseudo-versions, +incompatible, and
// toolchain versions converted to the Go database's form), npm by
// github.com/Masterminds/semver/v3, PyPI by a PEP 440 implementation of our
// own. github.com/aquasecurity/go-pep440-version orders correctly but
// writes into a parsed version's memory while comparing it
// (Version.Compare pads a slice that shares its backing array), so two
// goroutines matching against one DB race; it also formats both versions
// on every comparison. It stays as the oracle of a differential fuzz test.
//
// A SEMVER range is ordered as SemVer in every ecosystem, as the OSV
// specification defines it; an ECOSYSTEM range of an ecosystem this package
// does not know cannot be ordered, so there only listed versions match.
//
// Where a range's bound does not parse, matching over-reports rather than
// misses: an unreadable introduced counts as the first version, an
// unreadable fixed, last_affected or limit is dropped. A dependency
// version that does not parse matches listed versions only.
//
// Withdrawn advisories stay in the DB (so that a withdrawal imported later
// replaces the advisory it withdraws) but never match and are not counted.
// For one id the later modified time wins, and among equal ones the later
// import: the Go database sets every modified time to zero.
//
// A DB is encoded as gzip-compressed JSON with a format name and version,
// not gob: Decode reads bytes from the store, and checks every advisory as
// ParseOSV would have.
package vulndb
