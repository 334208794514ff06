package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/registry"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/fnlog"
)

func newDeployCmd(e *env) *cobra.Command {
	var build bool
	cmd := &cobra.Command{
		Use:   "deploy PATH",
		Short: "Deploy the function in a folder with moat.yaml (or the moat.yaml file)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if build {
				if _, err := buildWithProgress(cmd, args[0]); err != nil {
					return err
				}
			}
			b, err := bundle.Read(args[0])
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			// What served before, to say whether the deploy changed anything.
			var before *registry.Function
			if f, err := c.Get(cmd.Context(), b.Manifest.Name); err == nil {
				before = f
			}
			v, err := c.Deploy(cmd.Context(), b)
			if err != nil {
				return fmt.Errorf("deploy %s: %w", args[0], err)
			}
			return e.print(v, func(w io.Writer) {
				switch {
				case before != nil && before.Active == v.ID && before.Disabled == "":
					fmt.Fprintf(w, "no change: %s version %s, identical, was already serving\n", v.Manifest.Name, v.ID)
				case before != nil && slices.ContainsFunc(before.Versions, func(old registry.Version) bool { return old.ID == v.ID }):
					fmt.Fprintf(w, "re-activated %s version %s (identical content was deployed before)\n", v.Manifest.Name, v.ID)
				default:
					fmt.Fprintf(w, "deployed %s version %s (%d bytes, compiled in %s)\n",
						v.Manifest.Name, v.ID, v.ModuleSize, v.CompileTook.Round(time.Millisecond))
				}
				if by := checksOf(v).SignedBy; by != "" {
					fmt.Fprintf(w, "signature checked: signed by %s\n", by)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&build, "build", false, "build the folder's Go sources first")
	return cmd
}

// maxInvokeBody bounds what invoke reads for -d: the largest body a
// function may take (limits.body).
const maxInvokeBody = 64 << 20

func newInvokeCmd(e *env) *cobra.Command {
	var data, method, path string
	var headers []string
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Invoke a function over HTTP and print its response body",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData(cmd, data, maxInvokeBody)
			if err != nil {
				return err
			}
			h := http.Header{}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, ":")
				if !ok {
					return fmt.Errorf("-H %q: want 'Name: value'", kv)
				}
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			if method == "" {
				method = http.MethodGet
				if cmd.Flags().Changed("data") {
					method = http.MethodPost
				}
			}
			if path != "" && !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			resp, b, err := c.Invoke(cmd.Context(), method, args[0], path, h, body)
			if err != nil {
				return err
			}
			out := map[string]any{"status": resp.StatusCode, "headers": resp.Header, "body": string(b)}
			if err := e.print(out, func(w io.Writer) { w.Write(b) }); err != nil {
				return err
			}
			if resp.StatusCode >= 400 {
				return fmt.Errorf("%s answered %s (invocation %s)", args[0], resp.Status, resp.Header.Get("Moat-Invocation-Id"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "", "request body, @FILE, or @- for standard input")
	f.StringVarP(&method, "request", "X", "", "HTTP method (default GET, or POST with -d)")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.StringVar(&path, "path", "", "path after /fn/NAME")
	return cmd
}

func newLsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List deployed functions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			fns, err := c.List(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(fns, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tAUTH\tMEMORY\tTIMEOUT\tOWNER\tDEPLOYED\tVULNS\tEVENTS\tSTATUS")
				for _, f := range fns {
					status := serving(f.Disabled)
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Version, f.Auth, f.Memory, f.Timeout, f.Owner,
						f.Deployed.Format(time.RFC3339), vulnCounts(f.Vulnerabilities), eventCounts(f.Triggers), status)
				}
				tw.Flush()
			})
		},
	}
}

// eventCounts sums a function's triggers for ls: "-" when it has none.
func eventCounts(ts []events.TriggerState) string {
	if len(ts) == 0 {
		return "-"
	}
	var pending uint64
	for _, t := range ts {
		pending += t.Pending + uint64(t.InFlight)
	}
	return fmt.Sprintf("%d queued, %d dead", pending, ts[0].DeadLetters) // dead letters are counted per function
}

func newRmCmd(e *env) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a function and all its versions (asks first on a terminal when there are several)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if !yes && isTerminal(cmd.InOrStdin()) {
				f, err := c.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if len(f.Versions) > 1 {
					if err := confirm(cmd, fmt.Sprintf("remove %s and its %d versions (no rollback after this)?", args[0], len(f.Versions))); err != nil {
						return err
					}
				}
			}
			if err := c.Remove(cmd.Context(), args[0]); err != nil {
				return err
			}
			return e.print(map[string]string{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "removed %s\n", args[0]) })
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

// confirm asks question on a terminal and fails unless the answer is yes;
// off a terminal it does not ask.
func confirm(cmd *cobra.Command, question string) error {
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errors.New("not done: answered no")
	}
	return nil
}

// isTerminal reports whether r is an interactive terminal; the tests
// replace it to play one.
var isTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newRollbackCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME VERSION",
		Short: "Make an earlier version of a function serve again",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			v, err := c.Rollback(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return e.print(v, func(w io.Writer) { fmt.Fprintf(w, "%s now serves version %s\n", args[0], v.ID) })
		},
	}
}

func newLogsCmd(e *env) *cobra.Command {
	var n int
	var follow bool
	var since, until string
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show a function's log: what its invocations wrote to stderr, and failures (-o json: JSON Lines)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			var werr error
			lines := json.NewEncoder(e.stdout) // -o json: JSON Lines, one entry a line, as it comes
			err = c.LogsRange(cmd.Context(), args[0], n, since, until, follow, func(le *fnlog.Entry) {
				if werr != nil {
					return
				}
				if e.output == "json" {
					werr = lines.Encode(le)
					return
				}
				printEntry(e.stdout, le)
			})
			return errors.Join(err, werr)
		},
	}
	cmd.Flags().IntVarP(&n, "lines", "n", 100, "how many of the newest entries to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new entries")
	cmd.Flags().StringVar(&since, "since", "", "only entries from then on: a duration back (2h, 7d) or an RFC 3339 time")
	cmd.Flags().StringVar(&until, "until", "", "only entries up to then: a duration back or an RFC 3339 time")
	return cmd
}

func printEntry(w io.Writer, le *fnlog.Entry) {
	ts := le.Time.Format(time.RFC3339Nano)
	fmt.Fprintf(w, "%s %s status=%d took=%.2fms", ts, le.InvocationID, le.Status, le.TookMS)
	if le.Error != "" {
		fmt.Fprintf(w, " error=%q", le.Error)
	}
	fmt.Fprintln(w)
	for _, l := range le.Lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if le.Dropped > 0 {
		fmt.Fprintf(w, "  [%d bytes of log dropped over the cap]\n", le.Dropped)
	}
}

// vulnCounts shows advisory counts by decision: "2 warn, 1 allowed", or "-".
func vulnCounts(m map[string]int) string {
	var parts []string
	for _, d := range []string{"block", "warn", "allowed"} {
		if m[d] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[d], d))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
