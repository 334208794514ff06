package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// buildVersion is what moat version prints: the module version the binary
// was built at (a tag, or a pseudo-version naming the commit), the commit
// and whether the tree was modified, and the Go toolchain.
type buildVersion struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func currentVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func (v buildVersion) String() string {
	s := "moat " + v.Version
	if v.Commit != "" {
		s += " (commit " + v.Commit
		if v.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + ", " + v.Go + " " + v.Platform
}

func newVersionCmd(e *env) *cobra.Command {
	var node bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the binary's version and the Go toolchain that built it (--node: the node's, and the advisories that match it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := currentVersion()
			if !node {
				return e.print(v, func(w io.Writer) { fmt.Fprintln(w, v) })
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			rep, err := c.Node(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(rep, func(w io.Writer) {
				fmt.Fprintf(w, "node: moat %s", rep.Version)
				if rep.Commit != "" {
					fmt.Fprintf(w, " (commit %s)", rep.Commit)
				}
				fmt.Fprintf(w, ", %s %s, %d components\n", rep.Go, rep.Platform, rep.Components)
				switch {
				case rep.Database.ImportedAt.IsZero():
					fmt.Fprintln(w, "no advisory database imported: moat vulndb import, then ask again")
				case len(rep.Findings) == 0:
					fmt.Fprintf(w, "no advisory matches the node (database imported %s)\n", rep.Database.ImportedAt.UTC().Format(time.RFC3339))
				default:
					what := fmt.Sprintf("%d advisories match", len(rep.Findings))
					if len(rep.Findings) == 1 {
						what = "1 advisory matches"
					}
					fmt.Fprintf(w, "%s the node: upgrade it (docs/operations.md, Upgrade and rollback)\n", what)
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "  ID\tPACKAGE\tVERSION\tFIXED IN\tSEVERITY")
					for _, f := range rep.Findings {
						fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.ID, f.Package, f.Version, orDash(f.Fixed), f.Severity)
					}
					tw.Flush()
				}
			})
		},
	}
	cmd.Flags().BoolVar(&node, "node", false, "ask the node: its version, and the imported advisories that match its build")
	return cmd
}
