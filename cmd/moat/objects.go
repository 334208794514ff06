package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newObjectCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "object", Short: "Put, get, list and remove objects in the buckets functions are granted"}
	var contentType string
	put := &cobra.Command{
		Use:   "put BUCKET NAME [FILE]",
		Short: "Store FILE (or stdin) as NAME in BUCKET, replacing any object of that name once all of it is stored",
		Long: "Store FILE, or stdin when FILE is - or missing, as NAME in BUCKET. The object is\n" +
			"encrypted at rest with the bucket's key. A bucket comes into being with the first\n" +
			"deploy whose manifest grants it (permissions.objects). Audited as object.put.",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			if len(args) == 3 && args[2] != "-" {
				f, err := os.Open(args[2])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			info, err := c.PutObject(cmd.Context(), args[0], args[1], contentType, in)
			if err != nil {
				return err
			}
			return e.print(info, func(w io.Writer) {
				fmt.Fprintf(w, "stored %s in %s: %d bytes, %s\n", info.Name, info.Bucket, info.Size, info.Digest)
			})
		},
	}
	put.Flags().StringVar(&contentType, "content-type", "", "the object's media type (default application/octet-stream)")
	get := &cobra.Command{
		Use:   "get BUCKET NAME [FILE]",
		Short: "Write NAME of BUCKET to FILE (created 0600, not overwritten) or stdout",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if len(args) < 3 || args[2] == "-" {
				_, _, err := c.GetObject(cmd.Context(), args[0], args[1], cmd.OutOrStdout())
				return err
			}
			// Into a temporary file beside FILE, linked to FILE once complete, so a
			// read cut short leaves no half file under FILE's name.
			tmp, err := os.CreateTemp(filepath.Dir(args[2]), ".moat-object-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			_, _, err = c.GetObject(cmd.Context(), args[0], args[1], tmp)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			// A link, not a rename: it fails when FILE exists, with no
			// window between a check and the move.
			if err := os.Link(tmp.Name(), args[2]); errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists; not overwritten", args[2])
			} else if err != nil {
				return err
			}
			return nil
		},
	}
	ls := &cobra.Command{
		Use:   "ls [BUCKET [PREFIX]]",
		Short: "List the object buckets, or the objects of BUCKET whose names start with PREFIX",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				names, err := c.ObjectBuckets(cmd.Context())
				if err != nil {
					return err
				}
				return e.print(names, func(w io.Writer) {
					for _, n := range names {
						fmt.Fprintln(w, n)
					}
				})
			}
			prefix := ""
			if len(args) == 2 {
				prefix = args[1]
			}
			list, err := c.Objects(cmd.Context(), args[0], prefix)
			if err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSIZE\tTYPE\tMODIFIED")
				for _, o := range list {
					fmt.Fprintf(tw, "%q\t%d\t%s\t%s\n", o.Name, o.Size, o.ContentType, o.Modified.Format(time.RFC3339))
				}
				tw.Flush()
			})
		},
	}
	rm := &cobra.Command{
		Use:   "rm BUCKET NAME",
		Short: "Remove NAME from BUCKET (audited as object.delete)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.RemoveObject(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			return e.print(map[string]any{"bucket": args[0], "name": args[1], "removed": true}, func(w io.Writer) {
				fmt.Fprintf(w, "removed %s from %s\n", args[1], args[0])
			})
		},
	}
	cmd.AddCommand(put, get, ls, rm)
	return cmd
}
