package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newSecretCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Set, list and remove secrets; values are never shown"}
	var functions []string
	set := &cobra.Command{
		Use:   "set NAME [--functions a,b]",
		Short: "Set a secret, typed at a hidden prompt or piped on stdin (one trailing newline is dropped)",
		Long: "Set a secret: its value is read from stdin, so that it never appears in a\n" +
			"command line or a shell history. On a terminal it is asked for twice at a\n" +
			"prompt that does not show what is typed. A function can read it only if its\n" +
			"manifest lists NAME under permissions.secrets and the secret's list of\n" +
			"functions names it: --functions sets that list (admin only; audited), and\n" +
			"a deploy granting the secret to any other function is refused. A secret\n" +
			"nobody listed functions for may be granted to none.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := readSecret(cmd, args[0])
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			err = c.SetSecret(cmd.Context(), args[0], value)
			clear(value)
			if err != nil {
				return err
			}
			out := secretResult{Secret: args[0], Set: true}
			if cmd.Flags().Changed("functions") {
				if err := c.SetSecretFunctions(cmd.Context(), args[0], functions); err != nil {
					return fmt.Errorf("the value is set, its functions are not: %w", err)
				}
				out.Functions = append([]string{}, functions...)
			}
			return e.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "secret %s set\n", args[0])
				if out.Functions != nil {
					fmt.Fprintf(w, "secret %s may be granted to: %s\n", args[0], orNone(functions))
				}
			})
		},
	}
	set.Flags().StringSliceVar(&functions, "functions", nil, "the functions that may be granted the secret (admin only); replaces the list")
	var allowed []string
	allow := &cobra.Command{
		Use:   "allow NAME --functions a,b",
		Short: "Set the functions a secret may be granted to, keeping its value (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("functions") {
				return errors.New("--functions is required (an empty list allows none)")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.SetSecretFunctions(cmd.Context(), args[0], allowed); err != nil {
				return err
			}
			out := secretResult{Secret: args[0], Functions: append([]string{}, allowed...)}
			return e.print(out, func(w io.Writer) { fmt.Fprintf(w, "secret %s may be granted to: %s\n", args[0], orNone(allowed)) })
		},
	}
	allow.Flags().StringSliceVar(&allowed, "functions", nil, "the functions that may be granted the secret; replaces the list")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List secrets by name and date (never values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			list, err := c.ListSecrets(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED\tUPDATED\tBY\tFUNCTIONS")
				for _, s := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Created.Format(time.RFC3339), s.Updated.Format(time.RFC3339), s.UpdatedBy, orNone(s.Functions))
				}
				tw.Flush()
			})
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a secret",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.RemoveSecret(cmd.Context(), args[0]); err != nil {
				return err
			}
			return e.print(map[string]string{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "removed secret %s\n", args[0]) })
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate-master",
		Short: "Make a new master key and re-wrap every data key under it (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			out, err := c.RotateMaster(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "master key rotated: now %v; %v data keys re-wrapped\n", out["master_key_id"], out["data_keys_rewrapped"])
			})
		},
	}
	cmd.AddCommand(set, allow, ls, rm, rotate)
	return cmd
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ",")
}

func newKVCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "kv", Short: "Inspect KV buckets"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List KV buckets with the functions granted on each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			list, err := c.Buckets(cmd.Context())
			if err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "BUCKET\tGRANTS")
				for _, b := range list {
					var g []string
					for fn, access := range b.Grants {
						g = append(g, fn+":"+access)
					}
					slices.Sort(g)
					fmt.Fprintf(tw, "%s\t%s\n", b.Name, strings.Join(g, " "))
				}
				tw.Flush()
			})
		},
	}
	cmd.AddCommand(ls)
	return cmd
}

// readSecret reads the value of secret name: at a terminal, typed twice at
// a prompt that echoes nothing; otherwise all of stdin, less one trailing
// newline.
func readSecret(cmd *cobra.Command, name string) ([]byte, error) {
	in, stderr := cmd.InOrStdin(), cmd.ErrOrStderr()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "value of %s (not shown): ", name)
		value, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(stderr, "again, to confirm: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		same := err == nil && bytes.Equal(value, again)
		clear(again)
		switch {
		case err != nil:
			clear(value)
			return nil, err
		case !same:
			clear(value)
			return nil, errors.New("the two values differ: nothing was set")
		case len(value) == 0:
			return nil, errors.New("no value typed: nothing was set")
		case len(value) > 64<<10:
			clear(value)
			return nil, errors.New("the value is over 64KiB")
		}
		return value, nil
	}
	value, err := io.ReadAll(io.LimitReader(in, 64<<10+2))
	if err != nil {
		return nil, err
	}
	value = bytes.TrimSuffix(value, []byte("\n"))
	value = bytes.TrimSuffix(value, []byte("\r"))
	if len(value) == 0 {
		return nil, errors.New("no value on stdin (pipe it in, or run at a terminal to be asked)")
	}
	return value, nil
}

// secretResult is what secret set and allow did: never the value.
type secretResult struct {
	Secret    string   `json:"secret"`
	Set       bool     `json:"set,omitempty"`
	Functions []string `json:"functions,omitempty"` // the list, when it was set
}
