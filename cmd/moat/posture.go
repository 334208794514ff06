package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newPostureCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "posture [NAME]",
		Short: "Show every function's risks (or NAME's), most pressing first: each with its evidence and the fix",
		Long: "The posture checks read what the node records: dormant functions, grants\n" +
			"not used, public functions without a schema or without bounds, egress to\n" +
			"plain http or private addresses, secret-looking env values (never shown),\n" +
			"open advisories, unsigned versions, no owner, dead letters, functions\n" +
			"nothing can call. docs/posture.md lists them.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := functionArg(args, "")
			c, err := e.client()
			if err != nil {
				return err
			}
			fs, err := c.Posture(cmd.Context(), name)
			if err != nil {
				return err
			}
			return e.print(fs, func(w io.Writer) {
				if len(fs) == 0 {
					fmt.Fprintln(w, "no findings")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEVERITY\tFUNCTION\tCHECK\tEVIDENCE\tFIX")
				for _, f := range fs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(f.Severity), f.Function, f.Check,
						oneLine(string(printable([]byte(f.Evidence))), 90), oneLine(f.Fix, 90))
				}
				tw.Flush()
			})
		},
	}
}

func newDisableCmd(e *env) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "disable NAME",
		Short: "Make a function refuse every invocation (503, saying why) until moat enable; audited",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.Disable(cmd.Context(), args[0], reason); err != nil {
				return err
			}
			return e.print(map[string]string{"disabled": args[0], "reason": reason}, func(w io.Writer) { fmt.Fprintf(w, "disabled %s\n", args[0]) })
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown to callers and in moat ls (default: who disabled it)")
	return cmd
}

func newEnableCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "enable NAME",
		Short: "Make a disabled function serve again (a dormant one, or one disabled by hand or by an advisory); audited",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.Enable(cmd.Context(), args[0]); err != nil {
				return err
			}
			return e.print(map[string]string{"enabled": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "enabled %s\n", args[0]) })
		},
	}
}
