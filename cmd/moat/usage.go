package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newUsageCmd(e *env) *cobra.Command {
	var fn, since, until string
	cmd := &cobra.Command{
		Use:   "usage [NAME]",
		Short: "Show what functions spent (or NAME alone), per hour, with an estimated cost",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := functionArg(args, fn)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			rows, err := c.UsageRange(cmd.Context(), name, since, until)
			if err != nil {
				return err
			}
			return e.print(rows, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "HOUR (UTC)\tFUNCTION\tINVOCATIONS\tERRORS\tREFUSALS\tGB-SECONDS\tEST. COST")
				var total float64
				for _, r := range rows {
					var refusals []string
					for k, v := range r.Refusals {
						refusals = append(refusals, fmt.Sprintf("%s=%d", k, v))
					}
					sort.Strings(refusals)
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%.3f\t%.6f\n", r.Hour.Format("2006-01-02 15:00"), r.Function,
						r.Invocations, r.Errors, strings.Join(refusals, ","), r.GBSeconds, r.Cost)
					total += r.Cost
				}
				tw.Flush()
				fmt.Fprintf(w, "estimated total: %.6f\n", total)
			})
		},
	}
	cmd.Flags().StringVar(&fn, "function", "", "only this function (the same as NAME)")
	cmd.Flags().MarkHidden("function")
	cmd.Flags().StringVar(&since, "since", "", "only hours from then on: a duration back (24h, 7d) or an RFC 3339 time (default 24h)")
	cmd.Flags().StringVar(&until, "until", "", "only hours up to then: a duration back or an RFC 3339 time")
	return cmd
}

// functionArg is the function a command is about: its NAME argument, or
// the older flag spelling of it; both, when they differ, is an error.
func functionArg(args []string, flag string) (string, error) {
	if len(args) == 0 {
		return flag, nil
	}
	if flag != "" && flag != args[0] {
		return "", fmt.Errorf("%w: NAME %s and the flag naming %s: give one", errUsage, args[0], flag)
	}
	return args[0], nil
}
