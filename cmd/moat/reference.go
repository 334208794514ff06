package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// writeReference writes the CLI reference, docs/cli.md, from the commands
// themselves: every command with its usage, description, examples and
// flags. TestCLIReference holds the file to it.
func writeReference(w io.Writer, root *cobra.Command) {
	fmt.Fprintln(w, "# CLI reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the commands (`go test ./cmd/moat -run TestCLIReference -update`); every")
	fmt.Fprintln(w, "command takes `-o json`, and a failure exits non-zero with a one-line reason on stderr.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Client commands take these flags; `serve` does not (it listens, with `--listen`):")
	fmt.Fprintln(w)
	flagTable(w, root.PersistentFlags())
	fmt.Fprintln(w, "Commands:")
	fmt.Fprintln(w)
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			all = append(all, sub)
			walk(sub)
		}
	}
	walk(root)
	for _, c := range all {
		fmt.Fprintf(w, "- [`%s`](#%s): %s\n", c.CommandPath(), anchor(c.CommandPath()), c.Short)
	}
	fmt.Fprintln(w)
	for _, c := range all {
		fmt.Fprintf(w, "## %s\n\n%s\n\n", c.CommandPath(), c.Short)
		if c.Runnable() {
			fmt.Fprintf(w, "```\n%s\n```\n\n", c.UseLine())
		}
		if c.Long != "" {
			fmt.Fprintf(w, "%s\n\n", c.Long)
		}
		if c.Example != "" {
			fmt.Fprintf(w, "```sh\n%s\n```\n\n", strings.TrimRight(c.Example, "\n"))
		}
		if c.HasLocalFlags() {
			flagTable(w, c.LocalFlags())
		}
	}
}

func flagTable(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, "| flag | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		name := "`--" + f.Name + "`"
		if f.Shorthand != "" {
			name = "`-" + f.Shorthand + "`, " + name
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]" || def == "false" && f.Value.Type() == "bool",
			def == "0" && strings.Contains(f.Usage, "(default"): // the usage says what 0 means
			def = ""
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", name, def, strings.ReplaceAll(f.Usage, "|", "\\|"))
	})
	fmt.Fprintln(w)
}

func anchor(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") }
