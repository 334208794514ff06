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
	var fn, since string
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show what functions spent, per hour, with an estimated cost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			rows, err := c.Usage(cmd.Context(), fn, since)
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
	cmd.Flags().StringVar(&fn, "function", "", "only this function")
	cmd.Flags().StringVar(&since, "since", "", "from this far back (24h, 7d) or this RFC 3339 time (default 24h)")
	return cmd
}
