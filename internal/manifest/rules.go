package manifest

import (
	"github.com/moatfn/moat/internal/egress"

	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The checks below are shared by Parse, which adds the line, and Validate.
// Each returns an error that reads after "field: ".

// ValidName reports whether s is a valid function name:
// ^[a-z][a-z0-9-]{0,62}$.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckSecretName explains why s cannot name a secret, or returns nil.
func CheckSecretName(s string) error { return checkSecret(s) }

var (
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
	secretRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,127}$`)
)

// cgiVars are the meta-variables the gateway sets; env may not override them.
var cgiVars = []string{
	"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
	"SERVER_PROTOCOL", "SERVER_NAME", "SERVER_PORT", "SERVER_SOFTWARE",
	"GATEWAY_INTERFACE", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_USER", "AUTH_TYPE",
	"SCRIPT_NAME", "REQUEST_URI",
}

const (
	maxEnvKeys     = 64
	maxEnvValue    = 4096
	maxOwnerLength = 128
)

func checkName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid function name (a lower-case letter, then up to 62 lower-case letters, digits or hyphens)", s)
	}
	return nil
}

// checkRelPath accepts a slash-separated path relative to the manifest's
// folder that cannot leave it.
func checkRelPath(p string) error {
	if err := checkText(p); err != nil {
		return err
	}
	switch {
	case p == "":
		return errors.New("path is empty")
	case strings.Contains(p, `\`):
		return fmt.Errorf("%q contains a backslash (separate folders with /)", p)
	case strings.HasPrefix(p, "/") || filepath.IsAbs(p) || filepath.VolumeName(p) != "":
		return fmt.Errorf("%q is absolute (want a path relative to the manifest's folder)", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("%q contains \"..\" (the file must be inside the manifest's folder)", p)
	case path.Clean(p) == ".":
		return fmt.Errorf("%q names the folder itself, not a file", p)
	case !filepath.IsLocal(p):
		return fmt.Errorf("%q is not a local path", p)
	}
	return nil
}

// checkText refuses invalid UTF-8 and control characters.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%q contains a control character", s)
	}
	return nil
}

func checkOwner(s string) error {
	if err := checkText(s); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(s); n > maxOwnerLength {
		return fmt.Errorf("%d characters, more than %d", n, maxOwnerLength)
	}
	return nil
}

func checkEnvCount(n int) error {
	if n > maxEnvKeys {
		return fmt.Errorf("%d variables, more than %d", n, maxEnvKeys)
	}
	return nil
}

func checkEnvKey(k string) error {
	switch {
	case !envKeyRE.MatchString(k):
		return fmt.Errorf("%q is not a valid variable name (upper-case letters, digits and _, not starting with a digit, at most 128)", k)
	case slices.Contains(cgiVars, k):
		return fmt.Errorf("%q is a CGI variable the gateway sets", k)
	case strings.HasPrefix(k, "HTTP_"):
		return fmt.Errorf("%q: names starting HTTP_ are reserved for request headers", k)
	case strings.HasPrefix(k, "MOAT_"):
		return fmt.Errorf("%q: names starting MOAT_ are reserved for Moat", k)
	}
	return nil
}

func checkEnvValue(v string) error {
	switch {
	case len(v) > maxEnvValue:
		return fmt.Errorf("value is %d bytes, more than %d", len(v), maxEnvValue)
	case strings.IndexByte(v, 0) >= 0:
		return errors.New("value contains a NUL byte")
	case !utf8.ValidString(v):
		return errors.New("value is not valid UTF-8")
	}
	return nil
}

func checkMemory(s Size) error {
	if err := between(s, MiB, 4*GiB); err != nil {
		return err
	}
	if s%pageSize != 0 {
		return fmt.Errorf("%s is not a multiple of 64KiB, the WebAssembly page size", s)
	}
	return nil
}

func checkBody(s Size) error     { return between(s, 0, 64*MiB) }
func checkResponse(s Size) error { return between(s, KiB, 64*MiB) }

func between(s, lo, hi Size) error {
	if s < lo || s > hi {
		return fmt.Errorf("%s is not between %s and %s", s, lo, hi)
	}
	return nil
}

func checkTimeout(d time.Duration) error {
	const lo, hi = time.Millisecond, 15 * time.Minute
	switch {
	case d <= 0:
		return fmt.Errorf("%s is not positive", formatDuration(d))
	case d < lo || d > hi:
		return fmt.Errorf("%s is not between 1ms and 15m", formatDuration(d))
	}
	return nil
}

func checkConcurrency(n int) error {
	if n < 1 || n > 10000 {
		return fmt.Errorf("%d is not between 1 and 10000", n)
	}
	return nil
}

func checkAuth(s string) error {
	switch s {
	case "public", "key", "jwt", "internal":
		return nil
	}
	return fmt.Errorf("%q is not an auth mode (want public, key, jwt or internal)", s)
}

func checkMethod(s string) error {
	if !slices.Contains(allMethods, s) {
		return fmt.Errorf("%q is not a method (want one of %s, upper case)", s, strings.Join(allMethods, " "))
	}
	return nil
}

func checkContentType(s string) error {
	if err := checkText(s); err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(s)
	if err != nil {
		return fmt.Errorf("%q is not a media type: %w", s, err)
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || strings.Contains(sub, "/") {
		return fmt.Errorf("%q is not a media type (like application/json)", s)
	}
	return nil
}

func checkBucket(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid bucket name (a lower-case letter, then up to 62 lower-case letters, digits or hyphens)", s)
	}
	return nil
}

func checkAccess(s string) error {
	switch s {
	case "read", "write", "read-write":
		return nil
	}
	return fmt.Errorf("%q is not an access mode (want read, write or read-write)", s)
}

func checkSecret(s string) error {
	if !secretRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid secret name (an upper-case letter, then up to 127 upper-case letters, digits or _)", s)
	}
	return nil
}

// checkEgress accepts a URL prefix like "https://mail.example.net/v3/".
func checkEgress(s string) error {
	if err := checkText(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, " ") {
		return fmt.Errorf("%q contains a space", s)
	}
	if strings.ContainsAny(s, "?#") {
		return fmt.Errorf("%q has a query or fragment (want a prefix like https://host/path/)", s)
	}
	// Look for a wildcard before url.Parse, whose own complaint would be
	// less clear.
	if _, rest, ok := strings.Cut(s, "://"); ok {
		authority, _, _ := strings.Cut(rest, "/")
		if strings.Contains(authority, "*") {
			return fmt.Errorf("%q has a wildcard in the host (list each host)", s)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q: scheme must be https or http", s)
	case u.Opaque != "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host (want a prefix like https://host/path/)", s)
	case u.User != nil:
		return fmt.Errorf("%q contains a user name or password (use a secret instead)", s)
	case strings.Contains(u.Host, "*"):
		return fmt.Errorf("%q has a wildcard in the host (list each host)", s)
	case u.EscapedPath() != "" && !strings.HasSuffix(u.EscapedPath(), "/"):
		return fmt.Errorf("%q: path must end with / (it is a prefix)", s)
	}
	// The node matches calls with egress.ParsePrefix: what it would refuse
	// at run time is refused at deploy.
	if _, err := egress.ParsePrefix(s); err != nil {
		return err
	}
	return nil
}

// LockFileNames are the lock files Moat reads dependencies from.
var LockFileNames = []string{"package-lock.json", "Cargo.lock", "requirements.txt", "poetry.lock", "go.sum"}

func checkLockFile(p string) error {
	if err := checkRelPath(p); err != nil {
		return err
	}
	if !slices.Contains(LockFileNames, path.Base(p)) {
		return fmt.Errorf("%q is not a lock file Moat reads (%s)", p, strings.Join(LockFileNames, ", "))
	}
	return nil
}

// Severities orders advisory severities, lowest first.
var Severities = []string{"low", "medium", "high", "critical"}

func checkSeverity(s string) error {
	if !slices.Contains(Severities, s) {
		return fmt.Errorf("%q is not a severity (want low, medium, high or critical)", s)
	}
	return nil
}
