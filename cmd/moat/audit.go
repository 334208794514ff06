package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newAuditCmd(e *env) *cobra.Command {
	q := map[string]*string{}
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [NAME]",
		Short: "Show the audit trail (or NAME's records alone), newest first; audit verify proves it intact",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := functionArg(args, *q["fn"])
			if err != nil {
				return err
			}
			*q["fn"] = name
			c, err := e.client()
			if err != nil {
				return err
			}
			recs, err := c.Audit(cmd.Context(), values(q, limit))
			if err != nil {
				return err
			}
			return e.print(recs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tOUTCOME\tREASON\tSTATUS\tSOURCE")
				for _, r := range recs {
					reason := r.Reason
					if r.Repeats > 0 {
						reason = fmt.Sprintf("%s (x%d more)", reason, r.Repeats)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Seq, r.Time.Format(time.RFC3339), r.Actor, r.Action, r.Target, r.Outcome, reason, r.Status, r.Source)
				}
				tw.Flush()
			})
		},
	}
	f := cmd.PersistentFlags()
	for _, name := range []string{"fn", "actor", "action", "outcome", "source", "since", "until", "before"} {
		q[name] = f.String(name, "", "only records with this "+name)
	}
	f.Lookup("fn").Usage = "only records of this function (the same as NAME)"
	f.Lookup("since").Usage = "only records from then on: a duration back (24h, 7d) or an RFC 3339 time"
	f.Lookup("until").Usage = "only records up to then: a duration back or an RFC 3339 time"
	f.Lookup("before").Usage = "the next page: only records before this seq (the last seq shown)"
	cmd.Flags().IntVarP(&limit, "limit", "n", 100, "how many of the newest records to show")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk the chain and its signatures; name any record modified, removed, inserted or reordered, or a cut tail",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			rep, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return err
			}
			if err := e.print(rep, func(w io.Writer) {
				fmt.Fprintf(w, "node %s: %d records, last %d, signed up to %d (%d not yet signed)\n", rep.Node, rep.Records, rep.LastSeq, rep.LastSigned, rep.Unsigned)
				for _, p := range rep.Problems {
					fmt.Fprintf(w, "  %s at %d: %s\n", p.Kind, p.Seq, p.Detail)
				}
				if rep.OK() {
					fmt.Fprintln(w, "intact")
				}
			}); err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("audit chain of node %s: %d problems, the first %s at %d", rep.Node, len(rep.Problems), rep.Problems[0].Kind, rep.Problems[0].Seq)
			}
			return nil
		},
	}
	export := &cobra.Command{
		Use:   "export",
		Short: "Write records as JSON Lines, oldest first, for a SIEM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			recs, err := c.Audit(cmd.Context(), values(q, 10000))
			if err != nil {
				return err
			}
			enc := json.NewEncoder(e.stdout)
			for i := len(recs) - 1; i >= 0; i-- {
				if err := enc.Encode(recs[i]); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(verify, export)
	return cmd
}

func values(q map[string]*string, limit int) url.Values {
	v := url.Values{"limit": {fmt.Sprint(limit)}}
	for k, p := range q {
		if *p != "" {
			v.Set(k, *p)
		}
	}
	return v
}
