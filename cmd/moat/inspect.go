package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/supply"
)

// versionView is one deployed version as versions and inspect show it.
type versionView struct {
	ID           string    `json:"id"`
	Active       bool      `json:"active"`
	Deployed     time.Time `json:"deployed"`
	DeployedBy   string    `json:"deployed_by"`
	ModuleSHA256 string    `json:"module_sha256"`
	ModuleSize   int64     `json:"module_size"`
	SignedBy     string    `json:"signed_by,omitempty"`
	Findings     int       `json:"findings"`
}

func viewVersions(f *registry.Function) []versionView {
	out := make([]versionView, 0, len(f.Versions))
	for _, v := range f.Versions {
		vv := versionView{ID: v.ID, Active: v.ID == f.Active, Deployed: v.Deployed, DeployedBy: v.DeployedBy, ModuleSize: v.ModuleSize}
		if v.Manifest != nil {
			vv.ModuleSHA256 = v.Files[v.Manifest.Module]
		}
		rep := checksOf(&v)
		vv.SignedBy, vv.Findings = rep.SignedBy, len(rep.Findings)
		out = append(out, vv)
	}
	return out
}

func printVersions(w io.Writer, vs []versionView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tACTIVE\tDEPLOYED\tBY\tMODULE SHA-256\tSIGNED BY\tFINDINGS")
	for i := len(vs) - 1; i >= 0; i-- { // newest first
		v := vs[i]
		active := ""
		if v.Active {
			active = "*"
		}
		sum := v.ModuleSHA256
		if len(sum) > 16 {
			sum = sum[:16]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", v.ID, active, v.Deployed.UTC().Format(time.RFC3339), v.DeployedBy, sum, orDash(v.SignedBy), v.Findings)
	}
	tw.Flush()
}

// checksOf is what a version's deploy checks found; empty when none.
func checksOf(v *registry.Version) supply.Report {
	var rep supply.Report
	if len(v.Checks) > 0 {
		json.Unmarshal(v.Checks, &rep)
	}
	return rep
}

// getFunction is the record of the function named on the command line.
func getFunction(cmd *cobra.Command, e *env, name string) (*registry.Function, error) {
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	return c.Get(cmd.Context(), name)
}

// serving is a function's status as ls and inspect show it.
func serving(disabled string) string {
	if disabled != "" {
		return "disabled: " + disabled
	}
	return "serving"
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newVersionsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List a function's versions, newest first, with the one serving marked (for rollback)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := getFunction(cmd, e, args[0])
			if err != nil {
				return err
			}
			vs := viewVersions(f)
			return e.print(vs, func(w io.Writer) { printVersions(w, vs) })
		},
	}
}

// inspection is what moat inspect shows of a function.
type inspection struct {
	Name     string            `json:"name"`
	Active   string            `json:"active"`
	Status   string            `json:"status"`
	Versions []versionView     `json:"versions"`
	Manifest any               `json:"manifest"`
	Grants   []api.GrantUse    `json:"grants"`
	Findings []supply.Finding  `json:"findings"`
	Files    map[string]string `json:"files"`
	// Triggers is the state of the function's event triggers; [] when it
	// has none.
	Triggers []events.TriggerState `json:"triggers"`
}

func newInspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a function: its versions, the serving manifest, its grants and their last use, its findings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			f, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			in := inspection{Name: f.Name, Active: f.Active, Status: serving(f.Disabled), Versions: viewVersions(f), Grants: []api.GrantUse{}, Findings: []supply.Finding{}, Files: map[string]string{}, Triggers: []events.TriggerState{}}
			if v := f.ActiveVersion(); v != nil {
				in.Manifest, in.Files = v.Manifest, v.Files
				if rep := checksOf(v); rep.Findings != nil {
					in.Findings = rep.Findings
				}
				if v.Manifest != nil && len(v.Manifest.Triggers) > 0 {
					ts, err := c.Triggers(cmd.Context(), f.Name)
					if err != nil {
						return err
					}
					in.Triggers = ts
				}
			}
			// Grant use comes with the list (deployer, admin and auditor may read it).
			if list, err := c.List(cmd.Context()); err == nil {
				for _, s := range list {
					if s.Name == f.Name && s.Grants != nil {
						in.Grants = s.Grants
					}
				}
			}
			return e.print(in, func(w io.Writer) {
				fmt.Fprintf(w, "%s: %s, version %s\n", in.Name, in.Status, in.Active)
				if v := f.ActiveVersion(); v != nil && v.Manifest != nil {
					m := v.Manifest
					fmt.Fprintf(w, "auth %s, methods %s, memory %s, timeout %s\n", m.HTTP.Auth, orDash(strings.Join(m.HTTP.Methods, ",")), m.Limits.Memory, m.Limits.Timeout)
				}
				fmt.Fprintln(w, "\nversions:")
				printVersions(w, in.Versions)
				fmt.Fprintln(w, "\ngrants:")
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				if len(in.Grants) == 0 {
					fmt.Fprintln(tw, "  (none)")
				}
				for _, g := range in.Grants {
					used := "never"
					if g.LastUsed != nil {
						used = g.LastUsed.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "  %s\tlast used %s\n", g.Grant, used)
				}
				tw.Flush()
				fmt.Fprintln(w, "\ntriggers:")
				if len(in.Triggers) == 0 {
					fmt.Fprintln(w, "  (none)")
				}
				for _, t := range in.Triggers {
					if t.Kind == "schedule" {
						next := "never"
						if t.Next != nil {
							next = t.Next.Format(time.RFC3339)
						}
						fmt.Fprintf(w, "  schedule %q %s (overlap %s, max_deliver %d): next %s, %d pending, %d in flight, %s\n",
							t.Cron, orDash(t.Timezone), t.Overlap, t.MaxDeliver, next, t.Pending, t.InFlight, plural(t.DeadLetters, "dead letter"))
						continue
					}
					fmt.Fprintf(w, "  queue %s (max_deliver %d, concurrency %d): %d pending, %d in flight, %s\n",
						t.Subject, t.MaxDeliver, t.Concurrency, t.Pending, t.InFlight, plural(t.DeadLetters, "dead letter"))
				}
				fmt.Fprintln(w, "\nfindings:")
				if len(in.Findings) == 0 {
					fmt.Fprintln(w, "  (none)")
				}
				for _, fd := range in.Findings {
					fmt.Fprintf(w, "  %s %s %s %s: %s\n", fd.ID, fd.Package, fd.Version, fd.Severity, fd.Decision)
				}
			})
		},
	}
}
