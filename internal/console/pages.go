package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/posture"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/usage"
)

// page is what every template is given.
type page struct {
	Title  string
	Nav    string // the menu entry to mark
	User   string // the signed-in caller, as the audit trail names it
	Role   string
	CSRF   string
	Flash  string
	Error  string
	Node   string
	Data   any
	Denied []string // what the caller's role could not read, for the page to say so
}

// May reports whether the caller's role may make changes to functions.
func (p page) May() bool { return p.Role == auth.RoleAdmin || p.Role == auth.RoleDeployer }

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Node = c.cfg.Node
	if cl, ok := r.Context().Value(ctxKey{}).(caller); ok {
		p.User, p.Role, p.CSRF = cl.id.User(), cl.id.Role, cl.s.csrf
		c.mu.Lock()
		p.Flash, cl.s.flash = cl.s.flash, ""
		c.mu.Unlock()
	}
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, p); err != nil {
		c.log.Error("render", slog.String("page", name), slog.Any("err", err))
		http.Error(w, "the page could not be drawn; see the node's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage answers with an error page; err, if an API error, gives the
// status and the words.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, err error, status int, title, detail string) {
	var ae *apiError
	if errors.As(err, &ae) {
		status, title, detail = ae.Status, ae.Title, ae.Detail
	} else if err != nil {
		c.log.Error("console page", slog.String("path", r.URL.Path), slog.Any("err", err))
		status, title, detail = http.StatusInternalServerError, "Something failed", "See the node's log."
	}
	c.render(w, r, status, "error", page{Title: title, Error: detail})
}

// forbidden reports an API answer that the caller's role may not read.
func forbidden(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusForbidden
}

// done ends a change: back to where it was made, with what happened.
func (c *Console) done(w http.ResponseWriter, r *http.Request, back, flash string, err error) {
	if err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	s := from(r).s
	c.mu.Lock()
	s.flash = flash
	c.mu.Unlock()
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// row is one function in the functions table.
type row struct {
	api.Summary
	Exposure    string
	Kinds       []string // its trigger kinds
	LastInvoked time.Time
	Invocations int64
	Errors      int64
	Chart       chart
	Burn        float64 // the most of a budget spent, 0..1; -1 with no budget spent from
	Findings    int
	Dormant     bool
}

func (c *Console) functions(w http.ResponseWriter, r *http.Request) {
	var sums []api.Summary
	if err := c.call(r, http.MethodGet, "/api/v1/functions", nil, &sums); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	now := c.clock()
	var rows []usage.Row
	if err := c.call(r, http.MethodGet, "/api/v1/usage?since=720h", nil, &rows); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	var findings []posture.Finding
	if err := c.call(r, http.MethodGet, "/api/v1/posture", nil, &findings); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	table := make([]*row, 0, len(sums))
	byName := map[string]*row{}
	for _, s := range sums {
		t := &row{Summary: s, Exposure: s.Auth, Burn: -1}
		if t.Exposure == "" {
			t.Exposure = "-"
		}
		for _, b := range s.Budgets {
			if b.Amount > 0 {
				t.Burn = max(t.Burn, (b.Amount-b.Left)/b.Amount)
			}
		}
		for _, tr := range s.Triggers {
			if !slices.Contains(t.Kinds, tr.Kind) {
				t.Kinds = append(t.Kinds, tr.Kind)
			}
		}
		table = append(table, t)
		byName[s.Name] = t
	}
	hours := map[string][]float64{}
	errs := map[string][]float64{}
	start := now.Truncate(time.Hour).Add(-23 * time.Hour)
	for _, u := range rows {
		t := byName[u.Function]
		if t == nil {
			continue
		}
		if u.Invocations > 0 && u.Hour.After(t.LastInvoked) {
			t.LastInvoked = u.Hour
		}
		if i := int(u.Hour.Sub(start) / time.Hour); i >= 0 && i < 24 && !u.Hour.Before(start) {
			if hours[u.Function] == nil {
				hours[u.Function], errs[u.Function] = make([]float64, 24), make([]float64, 24)
			}
			hours[u.Function][i] += float64(u.Invocations)
			errs[u.Function][i] += float64(u.Errors)
			t.Invocations += u.Invocations
			t.Errors += u.Errors
		}
	}
	for name, t := range byName {
		t.Chart = sparkline(hours[name], errs[name], 120, 24)
	}
	for _, f := range findings {
		if t := byName[f.Function]; t != nil {
			t.Findings++
			if f.Check == "dormant" {
				t.Dormant = true
			}
		}
	}
	q := r.URL.Query()
	filter := strings.ToLower(strings.TrimSpace(q.Get("q")))
	exposure, flag := q.Get("exposure"), q.Get("flag")
	table = slices.DeleteFunc(table, func(t *row) bool {
		if filter != "" && !strings.Contains(strings.ToLower(t.Name), filter) && !strings.Contains(strings.ToLower(t.Owner), filter) {
			return true
		}
		if exposure != "" && t.Exposure != exposure {
			return true
		}
		switch flag {
		case "dormant":
			return !t.Dormant
		case "disabled":
			return t.Disabled == ""
		case "findings":
			return t.Findings == 0
		case "events":
			return len(t.Kinds) == 0
		}
		return false
	})
	sortBy, desc := q.Get("sort"), q.Get("desc") == "1"
	cmp := func(x, y *row) int { return strings.Compare(x.Name, y.Name) }
	switch sortBy {
	case "owner":
		cmp = func(x, y *row) int { return strings.Compare(x.Owner, y.Owner) }
	case "exposure":
		cmp = func(x, y *row) int { return strings.Compare(x.Exposure, y.Exposure) }
	case "last":
		cmp = func(x, y *row) int { return x.LastInvoked.Compare(y.LastInvoked) }
	case "invocations":
		cmp = func(x, y *row) int { return int(x.Invocations - y.Invocations) }
	case "errors":
		cmp = func(x, y *row) int { return int(x.Errors - y.Errors) }
	case "burn":
		cmp = func(x, y *row) int { return compareFloat(x.Burn, y.Burn) }
	case "findings":
		cmp = func(x, y *row) int { return x.Findings - y.Findings }
	default:
		sortBy = "name"
	}
	slices.SortStableFunc(table, func(x, y *row) int {
		if desc {
			return cmp(y, x)
		}
		return cmp(x, y)
	})
	type column struct{ Key, Label, Href, Mark string }
	var cols []column
	for _, k := range []struct{ key, label string }{{"name", "Function"}, {"owner", "Owner"}, {"exposure", "Exposure"}, {"", "Triggers"},
		{"last", "Last invoked"}, {"invocations", "Invocations 24 h"}, {"errors", "Errors 24 h"}, {"burn", "Budget burn"}, {"findings", "Findings"}} {
		col := column{Key: k.key, Label: k.label}
		if k.key != "" {
			v := url.Values{}
			for _, p := range []string{"q", "exposure", "flag"} {
				if q.Get(p) != "" {
					v.Set(p, q.Get(p))
				}
			}
			v.Set("sort", k.key)
			if k.key == sortBy && !desc {
				v.Set("desc", "1")
			}
			col.Href = "/?" + v.Encode()
			if k.key == sortBy {
				col.Mark = map[bool]string{false: "▲", true: "▼"}[desc]
			}
		}
		cols = append(cols, col)
	}
	c.render(w, r, http.StatusOK, "functions", page{Title: "Functions", Nav: "functions", Data: map[string]any{
		"Rows": table, "Columns": cols, "Q": q.Get("q"), "Exposure": exposure, "Flag": flag, "Now": now,
		"Exposures": []string{"public", "key", "jwt", "internal"},
	}})
}

func compareFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// grantLine is one grant of a function, declared against used.
type grantLine struct {
	Grant    string
	LastUsed *time.Time
	Unused   bool // not used in the posture window: a candidate to drop
}

func (c *Console) function(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !manifest.ValidName(name) {
		c.errorPage(w, r, nil, http.StatusNotFound, "Not found", "No function has that name.")
		return
	}
	var f registry.Function
	if err := c.call(r, http.MethodGet, "/api/v1/functions/"+name, nil, &f); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	var sums []api.Summary
	if err := c.call(r, http.MethodGet, "/api/v1/functions", nil, &sums); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	var sum api.Summary
	for _, s := range sums {
		if s.Name == name {
			sum = s
		}
	}
	var findings []posture.Finding
	if err := c.call(r, http.MethodGet, "/api/v1/posture?function="+name, nil, &findings); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	now := c.clock()
	var rows []usage.Row
	if err := c.call(r, http.MethodGet, "/api/v1/usage?since=168h&function="+name, nil, &rows); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	var denied []string
	var invocations []audit.Record
	if err := c.call(r, http.MethodGet, "/api/v1/audit?limit=20&action=invoke&fn="+name, nil, &invocations); forbidden(err) {
		denied = append(denied, "recent invocations (the audit trail is for admin and auditor keys)")
	} else if err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	entries, err := c.logEntries(r, name, 30)
	if err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	unused := map[string]bool{}
	for _, fd := range findings {
		if fd.Check == "unused-grants" {
			for _, g := range sum.Grants {
				if strings.Contains(fd.Evidence, g.Grant) {
					unused[g.Grant] = true
				}
			}
		}
	}
	var grants []grantLine
	for _, g := range sum.Grants {
		grants = append(grants, grantLine{Grant: g.Grant, LastUsed: g.LastUsed, Unused: unused[g.Grant]})
	}
	var manifestJSON []byte
	if v := f.ActiveVersion(); v != nil {
		manifestJSON, _ = json.MarshalIndent(v.Manifest, "", "  ")
	}
	versions := slices.Clone(f.Versions)
	slices.Reverse(versions) // newest first
	start := now.Truncate(time.Hour).Add(-167 * time.Hour)
	inv, errs, gbs := make([]float64, 168), make([]float64, 168), make([]float64, 168)
	for _, u := range rows {
		if i := int(u.Hour.Sub(start) / time.Hour); i >= 0 && i < 168 && !u.Hour.Before(start) {
			inv[i] += float64(u.Invocations)
			errs[i] += float64(u.Errors)
			gbs[i] += u.GBSeconds
		}
	}
	c.render(w, r, http.StatusOK, "function", page{Title: name, Nav: "functions", Denied: denied, Data: map[string]any{
		"F": f, "Summary": sum, "Versions": versions, "Manifest": string(manifestJSON), "Grants": grants,
		"Findings": findings, "Logs": entries, "Invocations": invocations,
		"Usage": barChart(inv, errs, 840, 120, start), "GBs": barChart(gbs, nil, 840, 80, start),
	}})
}

// logEntries reads fn's last n log entries through the API.
func (c *Console) logEntries(r *http.Request, fn string, n int) ([]fnlog.Entry, error) {
	var out []fnlog.Entry
	err := c.stream(r, "/api/v1/functions/"+fn+"/logs?n="+strconv.Itoa(n), func(b []byte) error {
		var e fnlog.Entry
		if json.Unmarshal(b, &e) == nil {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out) // newest first
	return out, nil
}

// tail streams fn's log as it is written: an HTML page that grows, so a
// live tail needs no script. It ends when the browser leaves or the node
// drains.
func (c *Console) tail(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !manifest.ValidName(name) {
		c.errorPage(w, r, nil, http.StatusNotFound, "Not found", "No function has that name.")
		return
	}
	if err := c.call(r, http.MethodGet, "/api/v1/functions/"+name, nil, nil); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	p := page{Title: name + ": live log", Node: c.cfg.Node, Data: name}
	if err := c.pages.ExecuteTemplate(w, "tail-head", p); err != nil {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	err := c.stream(r, "/api/v1/functions/"+name+"/logs?n=50&follow=true", func(b []byte) error {
		var e fnlog.Entry
		if json.Unmarshal(b, &e) != nil {
			return nil
		}
		if err := c.pages.ExecuteTemplate(w, "log-entry", e); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	var ae *apiError
	if errors.As(err, &ae) {
		p.Error = ae.Error()
	}
	c.pages.ExecuteTemplate(w, "tail-foot", p)
}

func (c *Console) rollback(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PostForm.Get("version")
	back := "/functions/" + url.PathEscape(name)
	err := c.call(r, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/rollback", map[string]string{"version": version}, nil)
	c.done(w, r, back, "Rolled back to "+truncate(version, 12)+".", err)
}

func (c *Console) disable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := c.call(r, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/disable", api.DisableRequest{Reason: r.PostForm.Get("reason")}, nil)
	c.done(w, r, "/functions/"+url.PathEscape(name), "Disabled: it refuses every invocation until enabled.", err)
}

func (c *Console) enable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := c.call(r, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/enable", nil, nil)
	c.done(w, r, "/functions/"+url.PathEscape(name), "Enabled.", err)
}

func (c *Console) posture(w http.ResponseWriter, r *http.Request) {
	var findings []posture.Finding
	if err := c.call(r, http.MethodGet, "/api/v1/posture", nil, &findings); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	type group struct {
		Severity string
		Findings []posture.Finding
	}
	var groups []group
	for _, sev := range []string{posture.High, posture.Medium, posture.Low} {
		g := group{Severity: sev}
		for _, f := range findings {
			if f.Severity == sev {
				g.Findings = append(g.Findings, f)
			}
		}
		groups = append(groups, g)
	}
	c.render(w, r, http.StatusOK, "posture", page{Title: "Posture", Nav: "posture", Data: map[string]any{"Groups": groups, "Total": len(findings)}})
}

// auditFilters are the audit page's filters: the API's own.
var auditFilters = []string{"fn", "actor", "action", "outcome", "source", "since", "until", "limit", "before"}

func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	q := url.Values{}
	form := map[string]string{}
	for _, k := range auditFilters {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
			form[k] = v
		}
	}
	if q.Get("limit") == "" {
		q.Set("limit", "100")
	}
	var recs []audit.Record
	if err := c.call(r, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &recs); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	var rep audit.Report
	verifyErr := ""
	if err := c.call(r, http.MethodGet, "/api/v1/audit/verify", nil, &rep); err != nil {
		verifyErr = err.Error()
	}
	next := ""
	if n, _ := strconv.Atoi(q.Get("limit")); len(recs) > 0 && len(recs) == n {
		nq := url.Values{}
		for k, v := range form {
			nq.Set(k, v)
		}
		nq.Set("before", strconv.FormatUint(recs[len(recs)-1].Seq, 10))
		next = "/audit?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit trail", Nav: "audit", Data: map[string]any{
		"Records": recs, "Report": rep, "VerifyError": verifyErr, "Form": form, "Next": next,
	}})
}

func (c *Console) auditRecord(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.errorPage(w, r, nil, http.StatusNotFound, "Not found", "A record's number is a positive whole number.")
		return
	}
	var recs []audit.Record
	for _, action := range []string{"", "checkpoint"} {
		q := url.Values{"limit": {"1"}, "before": {strconv.FormatUint(seq+1, 10)}}
		if action != "" {
			q.Set("action", action)
		}
		if err := c.call(r, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &recs); err != nil {
			c.errorPage(w, r, err, 0, "", "")
			return
		}
		if len(recs) == 1 && recs[0].Seq == seq {
			break
		}
		recs = nil
	}
	if len(recs) != 1 {
		c.errorPage(w, r, nil, http.StatusNotFound, "Not found", fmt.Sprintf("There is no record %d.", seq))
		return
	}
	raw, _ := json.MarshalIndent(recs[0], "", "  ")
	c.render(w, r, http.StatusOK, "record", page{Title: fmt.Sprintf("Record %d", seq), Nav: "audit", Data: map[string]any{"R": recs[0], "JSON": string(raw)}})
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	var sums []api.Summary
	if err := c.call(r, http.MethodGet, "/api/v1/functions", nil, &sums); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	type line struct {
		Name     string
		Triggers []events.TriggerState
		Letters  int
	}
	var lines []line
	for _, s := range sums {
		if len(s.Triggers) == 0 {
			continue
		}
		l := line{Name: s.Name, Triggers: s.Triggers, Letters: s.Triggers[0].DeadLetters}
		lines = append(lines, l)
	}
	slices.SortStableFunc(lines, func(x, y line) int { return y.Letters - x.Letters })
	c.render(w, r, http.StatusOK, "dead-letters", page{Title: "Dead letters", Nav: "dead-letters", Data: lines})
}

func (c *Console) deadLettersOf(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !manifest.ValidName(name) {
		c.errorPage(w, r, nil, http.StatusNotFound, "Not found", "No function has that name.")
		return
	}
	var letters api.Letters
	var denied []string
	if err := c.call(r, http.MethodGet, "/api/v1/functions/"+name+"/dlq", nil, &letters); forbidden(err) {
		denied = append(denied, "the dead letters themselves (they hold events' data: admin and deployer keys only)")
	} else if err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	c.render(w, r, http.StatusOK, "letters", page{Title: "Dead letters of " + name, Nav: "dead-letters", Denied: denied,
		Data: map[string]any{"Name": name, "L": letters}})
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	req := api.Replay{All: r.PostForm.Get("all") == "1"}
	if !req.All {
		id, err := strconv.ParseUint(r.PostForm.Get("id"), 10, 64)
		if err != nil || id == 0 {
			c.errorPage(w, r, nil, http.StatusBadRequest, "Bad request", "Name a dead letter to replay.")
			return
		}
		req.IDs = []uint64{id}
	}
	var out api.Replayed
	err := c.call(r, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/dlq/replay", req, &out)
	c.done(w, r, "/dead-letters/"+url.PathEscape(name), fmt.Sprintf("Replayed %d.", len(out.Replayed)), err)
}

func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var out struct {
		Purged int `json:"purged"`
	}
	err := c.call(r, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(name)+"/dlq", nil, &out)
	c.done(w, r, "/dead-letters/"+url.PathEscape(name), fmt.Sprintf("Purged %d.", out.Purged), err)
}

func (c *Console) node(w http.ResponseWriter, r *http.Request) {
	var rep api.NodeReport
	if err := c.call(r, http.MethodGet, "/api/v1/node", nil, &rep); err != nil {
		c.errorPage(w, r, err, 0, "", "")
		return
	}
	c.render(w, r, http.StatusOK, "node", page{Title: "Node", Nav: "node", Data: rep})
}

var funcs = template.FuncMap{
	// hourAgo says when, to the hour, usage last counted something: usage
	// is kept by the hour.
	"hourAgo": func(hour time.Time) string {
		if hour.IsZero() {
			return "not in 30 days"
		}
		d := time.Since(hour)
		switch {
		case d < time.Hour:
			return "this hour"
		case d < 48*time.Hour:
			return fmt.Sprintf("%d h ago", int(d.Hours()))
		}
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := time.Since(t)
		switch {
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return fmt.Sprintf("%d min ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%d h ago", int(d.Hours()))
		}
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct": func(f float64) string {
		if f < 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*f)
	},
	"short": func(s string) string { return truncate(s, 12) },
	"bytes": func(v any) string {
		var n uint64
		switch x := v.(type) {
		case int64:
			n = uint64(max(x, 0))
		case uint64:
			n = x
		case int:
			n = uint64(max(x, 0))
		}
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"join": strings.Join,
	"lines": func(s string) []string {
		var out []string
		sc := bufio.NewScanner(strings.NewReader(s))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		return out
	},
	"path": url.PathEscape,
	"list": func(s ...string) []string { return s },
}
