// Package client talks to a node's control API and invokes functions, for
// the CLI and for tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/posture"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/secrets"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/usage"
)

// Client is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	// noToken, when the client has no token, says where one was looked
	// for; a 401 carries it.
	noToken string
}

// NoTokenHint sets what a 401 says when the client has no token: where
// one was looked for.
func (c *Client) NoTokenHint(hint string) { c.noToken = hint }

// reach explains an error of sending a request: a node that does not
// answer is named, with the likely cause.
func (c *Client) reach(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("no Moat node answers at %s (is `moat serve` running? --url or $MOAT_URL names another): %w", c.base, err)
	}
	return err
}

// New returns a client of the node at base ("http://127.0.0.1:8080") using
// token. caFile, if set, is a PEM bundle trusted for the node's certificate.
func New(base, token, caFile string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("node URL %q: want http(s)://HOST:PORT", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificates", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Transport: tr}}, nil
}

// Error is a failed API call: the status and the problem document's text.
type Error struct {
	Status int
	Title  string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s (%d): %s", e.Title, e.Status, e.Detail)
	}
	return fmt.Sprintf("%s (%d)", e.Title, e.Status)
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	return c.doHeader(ctx, method, path, h, body, out)
}

// doHeader is do with the request headers h.
func (c *Client) doHeader(ctx context.Context, method, path string, h http.Header, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.reach(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		err := readError(resp)
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" && c.noToken != "" {
			err.Detail = strings.TrimSuffix(err.Detail+"; "+c.noToken, "; ")
		}
		return err
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func readError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	var p struct{ Title, Detail string }
	if b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); json.Unmarshal(b, &p) == nil && p.Title != "" {
		e.Title, e.Detail = p.Title, p.Detail
	}
	return e
}

// Deploy sends a bundle.
func (c *Client) Deploy(ctx context.Context, b *bundle.Bundle) (*registry.Version, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, _ := mw.CreateFormFile("manifest", "moat.yaml")
	part.Write(b.Source)
	paths := make([]string, 0, len(b.Files))
	for p := range b.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		part, _ := mw.CreateFormFile("file:"+p, p)
		part.Write(b.Files[p])
	}
	if b.Signature != nil {
		part, _ := mw.CreateFormFile("signature", "moat.sig")
		part.Write(b.Signature)
	}
	mw.Close()
	var v registry.Version
	if err := c.do(ctx, http.MethodPost, "/api/v1/functions", mw.FormDataContentType(), &buf, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// List returns every function.
func (c *Client) List(ctx context.Context) ([]api.Summary, error) {
	var out []api.Summary
	return out, c.do(ctx, http.MethodGet, "/api/v1/functions", "", nil, &out)
}

// Get returns one function's record.
func (c *Client) Get(ctx context.Context, name string) (*registry.Function, error) {
	var f registry.Function
	return &f, c.do(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(name), "", nil, &f)
}

// Remove deletes a function.
func (c *Client) Remove(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(name), "", nil, nil)
}

// Rollback activates an earlier version.
func (c *Client) Rollback(ctx context.Context, name, version string) (*registry.Version, error) {
	body, _ := json.Marshal(map[string]string{"version": version})
	var v registry.Version
	return &v, c.do(ctx, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/rollback", "application/json", bytes.NewReader(body), &v)
}

// Logs calls fn for each log entry of name: the newest n, then new ones
// while follow holds and ctx lasts.
func (c *Client) Logs(ctx context.Context, name string, n int, follow bool, fn func(*fnlog.Entry)) error {
	return c.LogsRange(ctx, name, n, "", "", follow, fn)
}

// LogsRange is Logs bounded by since and until (RFC 3339 or a duration
// back, like 2h; "" for no bound).
func (c *Client) LogsRange(ctx context.Context, name string, n int, since, until string, follow bool, fn func(*fnlog.Entry)) error {
	q := url.Values{"n": {strconv.Itoa(n)}}
	if follow {
		q.Set("follow", "true")
	}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/functions/"+url.PathEscape(name)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return c.reach(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 2<<20)
	for sc.Scan() {
		var e fnlog.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("log entry: %w", err)
		}
		fn(&e)
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// CreateKey creates an API key; the answer holds its token.
func (c *Client) CreateKey(ctx context.Context, req api.KeyRequest) (*api.NewKey, error) {
	body, _ := json.Marshal(req)
	var k api.NewKey
	return &k, c.do(ctx, http.MethodPost, "/api/v1/keys", "application/json", bytes.NewReader(body), &k)
}

// ListKeys lists API keys, never their tokens.
func (c *Client) ListKeys(ctx context.Context) ([]auth.Key, error) {
	var out []auth.Key
	return out, c.do(ctx, http.MethodGet, "/api/v1/keys", "", nil, &out)
}

// RevokeKey revokes an API key.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/keys/"+url.PathEscape(id), "", nil, nil)
}

// Usage returns usage rows of fn ("" for all) since since ("" for a day,
// "7d", "12h" or an RFC 3339 time).
func (c *Client) Usage(ctx context.Context, fn, since string) ([]usage.Row, error) {
	return c.UsageRange(ctx, fn, since, "")
}

// UsageRange is Usage up to until (a duration back or an RFC 3339 time;
// "" is now).
func (c *Client) UsageRange(ctx context.Context, fn, since, until string) ([]usage.Row, error) {
	q := url.Values{}
	if fn != "" {
		q.Set("function", fn)
	}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	var out []usage.Row
	return out, c.do(ctx, http.MethodGet, "/api/v1/usage?"+q.Encode(), "", nil, &out)
}

// Audit returns audit records, newest first, filtered by q (fn, actor,
// action, outcome, source, since, until, limit).
func (c *Client) Audit(ctx context.Context, q url.Values) ([]audit.Record, error) {
	var out []audit.Record
	return out, c.do(ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), "", nil, &out)
}

// AuditVerify verifies the node's audit chain.
func (c *Client) AuditVerify(ctx context.Context) (*audit.Report, error) {
	var rep audit.Report
	return &rep, c.do(ctx, http.MethodGet, "/api/v1/audit/verify", "", nil, &rep)
}

// SetSecret sets a secret's value.
func (c *Client) SetSecret(ctx context.Context, name string, value []byte) error {
	return c.do(ctx, http.MethodPut, "/api/v1/secrets/"+url.PathEscape(name), "application/octet-stream", bytes.NewReader(value), nil)
}

// SetSecretFunctions sets the functions allowed to be granted a secret.
func (c *Client) SetSecretFunctions(ctx context.Context, name string, functions []string) error {
	b, _ := json.Marshal(api.SecretFunctions{Functions: functions})
	return c.do(ctx, http.MethodPut, "/api/v1/secrets/"+url.PathEscape(name)+"/functions", "application/json", bytes.NewReader(b), nil)
}

// ListSecrets lists secrets' names and dates, never their values.
func (c *Client) ListSecrets(ctx context.Context) ([]secrets.Meta, error) {
	var out []secrets.Meta
	return out, c.do(ctx, http.MethodGet, "/api/v1/secrets", "", nil, &out)
}

// RemoveSecret removes a secret.
func (c *Client) RemoveSecret(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/secrets/"+url.PathEscape(name), "", nil, nil)
}

// RotateMaster re-wraps every data key under a new master key.
func (c *Client) RotateMaster(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	return out, c.do(ctx, http.MethodPost, "/api/v1/secrets/rotate-master", "", nil, &out)
}

// Buckets lists KV buckets with the functions granted on each.
func (c *Client) Buckets(ctx context.Context) ([]api.Bucket, error) {
	var out []api.Bucket
	return out, c.do(ctx, http.MethodGet, "/api/v1/kv", "", nil, &out)
}

// ImportVulnDB uploads advisories (an osv.dev all.zip or one OSV record).
func (c *Client) ImportVulnDB(ctx context.Context, body io.Reader, out any) error {
	return c.do(ctx, http.MethodPost, "/api/v1/vulndb", "application/octet-stream", body, out)
}

// VulnDBStatus returns when advisories were last imported and how many.
func (c *Client) VulnDBStatus(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodGet, "/api/v1/vulndb", "", nil, out)
}

// Vulns returns the findings of every function's active version.
func (c *Client) Vulns(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodGet, "/api/v1/vulns", "", nil, out)
}

// ScanVulns matches components against the node's imported database.
func (c *Client) ScanVulns(ctx context.Context, req api.ScanRequest) (*api.ScanResult, error) {
	b, _ := json.Marshal(req)
	var out api.ScanResult
	return &out, c.do(ctx, http.MethodPost, "/api/v1/vulns/scan", "application/json", bytes.NewReader(b), &out)
}

// AllowVuln records an exception.
func (c *Client) AllowVuln(ctx context.Context, req api.ExceptionRequest) (*supply.Exception, error) {
	b, _ := json.Marshal(req)
	var out supply.Exception
	return &out, c.do(ctx, http.MethodPost, "/api/v1/vulns/exceptions", "application/json", bytes.NewReader(b), &out)
}

// Exceptions lists exceptions.
func (c *Client) Exceptions(ctx context.Context) ([]supply.Exception, error) {
	var out []supply.Exception
	return out, c.do(ctx, http.MethodGet, "/api/v1/vulns/exceptions", "", nil, &out)
}

// RemoveException removes one exception.
func (c *Client) RemoveException(ctx context.Context, fn, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/vulns/exceptions/"+url.PathEscape(fn)+"/"+url.PathEscape(id), "", nil, nil)
}

// SBOM returns a CycloneDX SBOM of a deployed function.
func (c *Client) SBOM(ctx context.Context, fn string) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(fn)+"/sbom", "", nil, &out)
}

// Invoke calls a function over HTTP like any client would.
func (c *Client) Invoke(ctx context.Context, method, name, path string, header http.Header, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/fn/"+name+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, c.reach(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Publish publishes an event on subject: data is its data, h may carry
// Content-Type and ce-* attributes (percent-encoded as the CloudEvents HTTP
// binding says).
func (c *Client) Publish(ctx context.Context, subject string, h http.Header, data []byte) (*events.Published, error) {
	var out events.Published
	return &out, c.doHeader(ctx, http.MethodPost, "/api/v1/events/"+url.PathEscape(subject), h, bytes.NewReader(data), &out)
}

// Triggers returns the state of a function's event triggers.
func (c *Client) Triggers(ctx context.Context, fn string) ([]events.TriggerState, error) {
	var out []events.TriggerState
	return out, c.do(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(fn)+"/triggers", "", nil, &out)
}

// Letters lists a function's dead letters, without their data.
func (c *Client) Letters(ctx context.Context, fn string) (*api.Letters, error) {
	var out api.Letters
	return &out, c.do(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(fn)+"/dlq", "", nil, &out)
}

// Letter returns one dead letter, with its data.
func (c *Client) Letter(ctx context.Context, fn string, id uint64) (*events.Letter, error) {
	var out events.Letter
	return &out, c.do(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(fn)+"/dlq/"+strconv.FormatUint(id, 10), "", nil, &out)
}

// Replay sends dead letters again: ids, or all of them.
func (c *Client) Replay(ctx context.Context, fn string, ids []uint64, all bool) (*api.Replayed, error) {
	b, _ := json.Marshal(api.Replay{IDs: ids, All: all})
	var out api.Replayed
	return &out, c.do(ctx, http.MethodPost, "/api/v1/functions/"+url.PathEscape(fn)+"/dlq/replay", "application/json", bytes.NewReader(b), &out)
}

// Purge deletes a function's dead letters and returns how many there were.
func (c *Client) Purge(ctx context.Context, fn string) (int, error) {
	var out struct {
		Purged int `json:"purged"`
	}
	return out.Purged, c.do(ctx, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(fn)+"/dlq", "", nil, &out)
}

// Posture returns the posture findings of every function, or of fn alone.
func (c *Client) Posture(ctx context.Context, fn string) ([]posture.Finding, error) {
	q := url.Values{}
	if fn != "" {
		q.Set("function", fn)
	}
	var out []posture.Finding
	return out, c.do(ctx, http.MethodGet, "/api/v1/posture?"+q.Encode(), "", nil, &out)
}

// Node returns what the node is built of and the advisories that match it.
func (c *Client) Node(ctx context.Context) (*api.NodeReport, error) {
	var out api.NodeReport
	return &out, c.do(ctx, http.MethodGet, "/api/v1/node", "", nil, &out)
}

// Disable makes fn refuse invocations, saying reason, until Enable.
func (c *Client) Disable(ctx context.Context, fn, reason string) error {
	b, _ := json.Marshal(api.DisableRequest{Reason: reason})
	return c.do(ctx, http.MethodPost, "/api/v1/functions/"+url.PathEscape(fn)+"/disable", "application/json", bytes.NewReader(b), nil)
}

// Enable makes a disabled fn serve again.
func (c *Client) Enable(ctx context.Context, fn string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/functions/"+url.PathEscape(fn)+"/enable", "application/json", strings.NewReader("{}"), nil)
}

// ObjectBuckets lists the object buckets.
func (c *Client) ObjectBuckets(ctx context.Context) ([]string, error) {
	var out []string
	return out, c.do(ctx, http.MethodGet, "/api/v1/objects", "", nil, &out)
}

// Objects describes the objects of bucket whose names start with prefix.
func (c *Client) Objects(ctx context.Context, bucket, prefix string) ([]objstore.Info, error) {
	var out []objstore.Info
	return out, c.do(ctx, http.MethodGet, "/api/v1/objects/"+url.PathEscape(bucket)+"?prefix="+url.QueryEscape(prefix), "", nil, &out)
}

func objectPath(bucket, name string) string {
	return "/api/v1/objects/" + url.PathEscape(bucket) + "/object?name=" + url.QueryEscape(name)
}

// PutObject stores body as bucket's object name.
func (c *Client) PutObject(ctx context.Context, bucket, name, contentType string, body io.Reader) (*objstore.Info, error) {
	var out objstore.Info
	return &out, c.do(ctx, http.MethodPut, objectPath(bucket, name), contentType, body, &out)
}

// RemoveObject deletes bucket's object name.
func (c *Client) RemoveObject(ctx context.Context, bucket, name string) error {
	return c.do(ctx, http.MethodDelete, objectPath(bucket, name), "", nil, nil)
}

// GetObject copies bucket's object name to w and returns its stored
// content type and digest. A read cut short is an error.
func (c *Client) GetObject(ctx context.Context, bucket, name string, w io.Writer) (contentType, digest string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+objectPath(bucket, name), nil)
	if err != nil {
		return "", "", err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", "", c.reach(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", "", readError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("object cut short: %d of %d bytes", n, resp.ContentLength)
	}
	return resp.Header.Get("Moat-Content-Type"), resp.Header.Get("Moat-Digest"), err
}
