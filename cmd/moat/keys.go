package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/api"
)

func newKeyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Create, list and revoke API keys"}
	var req api.KeyRequest
	var functions, subjects string
	create := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create an API key and print its token, once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if functions != "" {
				req.Functions = strings.Split(functions, ",")
			}
			if subjects != "" {
				req.Subjects = strings.Split(subjects, ",")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			k, err := c.CreateKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			// A name not deployed (yet) is allowed, but likely a typo: say so.
			if len(req.Functions) > 0 {
				if list, err := c.List(cmd.Context()); err == nil {
					deployed := map[string]bool{}
					for _, f := range list {
						deployed[f.Name] = true
					}
					for _, fn := range req.Functions {
						if !deployed[fn] {
							fmt.Fprintf(cmd.ErrOrStderr(), "warning: no function %s is deployed; the key may call it once one is\n", fn)
						}
					}
				}
			}
			return e.print(k, func(w io.Writer) {
				fmt.Fprintf(w, "key %s (%s) created; its token, shown only now:\n%s\n", k.ID, k.Role, k.Token)
			})
		},
	}
	f := create.Flags()
	f.StringVar(&req.Role, "role", "", "admin, deployer, invoker, auditor or publisher")
	f.StringVar(&functions, "functions", "", "for an invoker: the functions it may call, comma-separated (default: every function with auth: key)")
	f.StringVar(&subjects, "subjects", "", "for a publisher (required): the event subjects it may publish on, comma-separated patterns like orders.>")
	f.StringVar(&req.Expires, "expires", "", "lifetime, like 30d or 12h (default: none)")
	f.StringVar(&req.Note, "note", "", "what the key is for")
	create.MarkFlagRequired("role")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List API keys (never their tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			keys, err := c.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(keys, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tROLE\tSCOPE\tCREATED\tEXPIRES\tNOTE")
				for _, k := range keys {
					exp := "never"
					if k.Expires != nil {
						exp = k.Expires.Format(time.RFC3339)
					}
					scope := strings.Join(append(slices.Clone(k.Functions), k.Subjects...), ",")
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, orDash(scope), k.Created.Format(time.RFC3339), exp, k.Note)
				}
				tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.RevokeKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			return e.print(map[string]string{"revoked": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "revoked %s\n", args[0]) })
		},
	}
	cmd.AddCommand(create, ls, revoke)
	return cmd
}
