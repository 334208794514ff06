package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/vulndb"
)

func newVulnDBCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "vulndb", Short: "Import and inspect the node's offline vulnerability database"}
	imp := &cobra.Command{
		Use:   "import PATH",
		Short: "Import OSV advisories: an osv.dev all.zip, a folder of OSV JSON, or one record (admin)",
		Long: "Import OSV advisories into the node: osv.dev's per-ecosystem all.zip\n" +
			"(Go, npm, PyPI, ...), a folder of OSV JSON files, or one file. The node\n" +
			"merges them into its database and re-scans every deployed function; a\n" +
			"malformed file changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := importBody(args[0])
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			var res struct {
				Status   vulndb.Status `json:"status"`
				Found    []fnFindings  `json:"new_findings"`
				Disabled []string      `json:"disabled"`
			}
			if err := c.ImportVulnDB(cmd.Context(), body, &res); err != nil {
				return err
			}
			return e.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "imported: %d advisories in the database (%s)\n", res.Status.Total, counts(res.Status.Counts))
				for _, f := range res.Found {
					for _, fd := range f.Findings {
						fmt.Fprintf(w, "new: %s %s: %s in %s %s (%s) %s\n", f.Function, f.Version, fd.ID, fd.Package, fd.Version, fd.Severity, fd.Decision)
					}
				}
				for _, d := range res.Disabled {
					fmt.Fprintf(w, "disabled: %s\n", d)
				}
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "When advisories were last imported, and how many per ecosystem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			var st vulndb.Status
			if err := c.VulnDBStatus(cmd.Context(), &st); err != nil {
				return err
			}
			return e.print(st, func(w io.Writer) {
				if st.ImportedAt.IsZero() {
					fmt.Fprintln(w, "no advisories imported yet: moat vulndb import PATH")
					return
				}
				fmt.Fprintf(w, "imported %s: %d advisories (%s)\n", st.ImportedAt.Format(time.RFC3339), st.Total, counts(st.Counts))
			})
		},
	}
	cmd.AddCommand(imp, status)
	return cmd
}

func counts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// importBody is what `vulndb import` uploads: a file as it is, a folder as
// a zip of its JSON files.
func importBody(path string) (io.Reader, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return os.Open(path)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	n := 0
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		w, err := zw.Create(fmt.Sprintf("%d.json", n))
		if err != nil {
			return err
		}
		n++
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no .json file", path)
	}
	return &buf, zw.Close()
}

type fnFindings struct {
	Function string           `json:"function"`
	Version  string           `json:"version"`
	Disabled string           `json:"disabled"`
	Findings []supply.Finding `json:"findings"`
}

func newVulnCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "vuln", Short: "Vulnerable dependencies of deployed functions, and exceptions"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "Findings of every function's active version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			var list []fnFindings
			if err := c.Vulns(cmd.Context(), &list); err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FUNCTION\tADVISORY\tPACKAGE\tVERSION\tSEVERITY\tFIXED\tDECISION")
				for _, f := range list {
					if f.Disabled != "" {
						fmt.Fprintf(tw, "%s\t(disabled: %s)\t\t\t\t\t\n", f.Function, f.Disabled)
					}
					for _, fd := range f.Findings {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Function, fd.ID, fd.Package, fd.Version, fd.Severity, fd.Fixed, fd.Decision)
					}
				}
				tw.Flush()
			})
		},
	}
	var req api.ExceptionRequest
	allow := &cobra.Command{
		Use:   "allow ID --function F --until DATE --reason TEXT",
		Short: "Let a function deploy and run with an advisory until a date (admin; audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.ID = args[0]
			c, err := e.client()
			if err != nil {
				return err
			}
			ex, err := c.AllowVuln(cmd.Context(), req)
			if err != nil {
				return err
			}
			return e.print(ex, func(w io.Writer) {
				fmt.Fprintf(w, "%s allowed for %s until %s\n", ex.ID, ex.Function, ex.Until.Format(time.RFC3339))
			})
		},
	}
	f := allow.Flags()
	f.StringVar(&req.Function, "function", "", "the function the exception is for")
	f.StringVar(&req.Until, "until", "", "when it ends: a date (2027-01-31, end of day UTC) or an RFC 3339 time; at most a year")
	f.StringVar(&req.Reason, "reason", "", "why, for the audit trail")
	for _, fl := range []string{"function", "until", "reason"} {
		allow.MarkFlagRequired(fl)
	}
	exceptions := &cobra.Command{
		Use:   "exceptions",
		Short: "List exceptions, expired ones too",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			list, err := c.Exceptions(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FUNCTION\tADVISORY\tUNTIL\tBY\tREASON")
				for _, x := range list {
					until := x.Until.Format(time.RFC3339)
					if !x.Until.After(time.Now()) {
						until += " (expired)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.Function, x.ID, until, x.By, x.Reason)
				}
				tw.Flush()
			})
		},
	}
	var rmFn string
	rm := &cobra.Command{
		Use:   "unallow ID --function F",
		Short: "Remove an exception (admin; audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			return c.RemoveException(cmd.Context(), rmFn, args[0])
		},
	}
	rm.Flags().StringVar(&rmFn, "function", "", "the function")
	rm.MarkFlagRequired("function")
	cmd.AddCommand(ls, allow, exceptions, rm)
	return cmd
}

func newSBOMCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "sbom NAME",
		Short: "Print a CycloneDX JSON SBOM of a deployed function's active version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			b, err := c.SBOM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var out bytes.Buffer
			json.Indent(&out, b, "", "  ")
			out.WriteByte('\n')
			_, err = e.stdout.Write(out.Bytes())
			return err
		},
	}
}

func newScanCmd(e *env) *cobra.Command {
	var dbs []string
	var pol supply.Policy
	cmd := &cobra.Command{
		Use:   "scan PATH [--db OSV...]",
		Short: "Check a function folder or module against OSV advisories, as a deploy would",
		Long: "Read what a function folder (moat.yaml and the files it names) or a bare\n" +
			"module is made of and match it against OSV advisories. With --db (osv.dev\n" +
			"all.zip files, folders of OSV JSON, or files; repeatable) the scan is\n" +
			"offline; without it, against the database imported into the node (an\n" +
			"admin, deployer or auditor key may), under the node's policy and its\n" +
			"exceptions for the function. Only the list of dependencies leaves the\n" +
			"machine. Exits non-zero when a deploy would be blocked.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, files, err := scanTarget(args[0])
			if err != nil {
				return err
			}
			inv, err := supply.Inventory(m, files)
			if err != nil {
				return err
			}
			var findings []supply.Finding
			var source string
			threshold := pol.Block
			if len(dbs) > 0 {
				db := &vulndb.DB{}
				for _, p := range dbs {
					d, err := vulndb.Import(p)
					if err != nil {
						return err
					}
					db = db.Merge(d)
				}
				findings = supply.Evaluate(db, inv.Components, m, pol, nil, time.Now())
				source = fmt.Sprintf("database: %s (%d advisories)", strings.Join(dbs, ", "), db.Len())
			} else {
				c, err := e.client()
				if err != nil {
					return err
				}
				req := api.ScanRequest{Components: inv.Components, ManifestBlock: m.Vulnerabilities.Block}
				if manifest.ValidName(m.Name) {
					req.Function = m.Name
				}
				if cmd.Flags().Changed("block") {
					req.Block = pol.Block
				}
				if cmd.Flags().Changed("unknown") {
					req.Unknown = pol.Unknown
				}
				res, err := c.ScanVulns(cmd.Context(), req)
				if err != nil {
					return fmt.Errorf("scan against the node (or give --db for an offline scan): %w", err)
				}
				if res.Database.ImportedAt.IsZero() {
					return errors.New("the node has no advisories imported: moat vulndb import FILE first, or give --db for an offline scan")
				}
				findings, threshold = res.Findings, res.Threshold
				source = fmt.Sprintf("database: the node's, imported %s (%d advisories); %d exceptions in force",
					res.Database.ImportedAt.UTC().Format(time.RFC3339), res.Database.Total, res.Exceptions)
			}
			rep := supply.Report{GoVersion: inv.GoVersion, Main: inv.Main, Components: inv.Components, Findings: findings, ScannedAt: time.Now().UTC()}
			out := struct {
				supply.Report
				Source string `json:"source"`
			}{rep, source}
			err = e.print(out, func(w io.Writer) {
				fmt.Fprintln(w, source)
				fmt.Fprintf(w, "%s: %d dependencies", m.Name, len(inv.Components))
				if inv.GoVersion != "" {
					fmt.Fprintf(w, " (Go %s)", inv.GoVersion)
				}
				fmt.Fprintf(w, ", %d findings\n", len(findings))
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				if len(findings) > 0 {
					fmt.Fprintln(tw, "ADVISORY\tALIASES\tPACKAGE\tVERSION\tSEVERITY\tFIXED\tDECISION")
				}
				for _, f := range findings {
					sev := f.Severity
					if f.Assumed {
						sev += "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, strings.Join(f.Aliases, ","), f.Package, f.Version, sev, f.Fixed, f.Decision)
				}
				tw.Flush()
			})
			if err != nil {
				return err
			}
			if b := rep.Blocking(); len(b) > 0 {
				return &supply.BlockedError{Function: m.Name, Threshold: threshold, Findings: b}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&dbs, "db", nil, "OSV advisories: an all.zip, a folder or a file (repeatable); without it, the node's database")
	f.StringVar(&pol.Block, "block", "high", "lowest severity of an advisory with a fix that blocks: low, medium, high, critical or none")
	f.StringVar(&pol.Unknown, "unknown", "high", "severity assumed for advisories that give none")
	return cmd
}

// scanTarget reads a function folder, or a bare .wasm module.
func scanTarget(path string) (*manifest.Manifest, map[string][]byte, error) {
	if strings.HasSuffix(path, ".wasm") {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		name := filepath.Base(path)
		return &manifest.Manifest{Name: strings.TrimSuffix(name, ".wasm"), Module: name}, map[string][]byte{name: b}, nil
	}
	b, err := bundle.Read(path)
	if err != nil {
		return nil, nil, err
	}
	return b.Manifest, b.Files, nil
}
