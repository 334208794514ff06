package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/client"
)

// defaultData is the data directory when --data is not given.
const defaultData = ".moat"

// env holds what every command shares: where output goes, and how to reach
// a node.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	output         string // "text" or "json"
	url, token     string
	caFile         string
}

// clientFlags are the global flags of commands that talk to a node; the
// commands in serverSide neither take nor show them.
var (
	clientFlags = []string{"url", "token", "ca-file", "output"}
	serverSide  = map[string]bool{"serve": true}
)

// hideClientFlags makes cmd's help leave out the client flags.
func hideClientFlags(cmd *cobra.Command) {
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		pf := c.Root().PersistentFlags()
		for _, name := range clientFlags {
			pf.Lookup(name).Hidden = true
		}
		help(c, args)
		for _, name := range clientFlags {
			pf.Lookup(name).Hidden = false
		}
	})
}

func newRootCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:           "moat",
		Short:         "Moat: a serverless platform that is secure by default",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = currentVersion().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&e.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&e.url, "url", "", "node URL (default $MOAT_URL or http://127.0.0.1:8080)")
	pf.StringVar(&e.token, "token", "", "API token (default $MOAT_TOKEN, $MOAT_TOKEN_FILE or .moat/admin.token)")
	pf.StringVar(&e.caFile, "ca-file", "", "PEM file of CAs to trust for the node's certificate (default $MOAT_CA_FILE)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if e.output != "text" && e.output != "json" {
			return fmt.Errorf("--output %q: want text or json", e.output)
		}
		if serverSide[cmd.Name()] {
			for _, name := range clientFlags {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s is a client flag: %s does not talk to a node (serve listens on --listen)", name, cmd.Name())
				}
			}
		}
		return nil
	}
	serve := newServeCmd(e)
	hideClientFlags(serve)
	root.AddCommand(
		serve,
		newDeployCmd(e),
		newInvokeCmd(e),
		newLsCmd(e),
		newRmCmd(e),
		newLogsCmd(e),
		newRollbackCmd(e),
		newVersionsCmd(e),
		newInspectCmd(e),
		newVersionCmd(e),
		newNewCmd(e),
		newBuildCmd(e),
		newDevCmd(e),
		newKeyCmd(e),
		newUsageCmd(e),
		newAuditCmd(e),
		newSecretCmd(e),
		newObjectCmd(e),
		newKVCmd(e),
		newPostureCmd(e),
		newDisableCmd(e),
		newEnableCmd(e),
		newPublishCmd(e),
		newDLQCmd(e),
		newKeygenCmd(e),
		newSignCmd(e),
		newScanCmd(e),
		newSBOMCmd(e),
		newVulnDBCmd(e),
		newVulnCmd(e),
	)
	completeFunctionNames(root, e)
	return root
}

// completeFunctionNames makes shell completion (moat completion bash|zsh|
// fish|powershell) offer the node's function names for the first argument
// of every command whose usage starts NAME or [NAME] (a secret's commands
// name a secret instead).
func completeFunctionNames(c *cobra.Command, e *env) {
	for _, sub := range c.Commands() {
		completeFunctionNames(sub, e)
	}
	fields := strings.Fields(c.Use)
	if len(fields) < 2 || fields[1] != "NAME" && fields[1] != "[NAME]" || c.Parent() != nil && c.Parent().Name() == "secret" {
		return
	}
	c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := e.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		fns, err := cl.List(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, f := range fns {
			if strings.HasPrefix(f.Name, toComplete) {
				names = append(names, f.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// client returns a client of the node the flags and environment name.
func (e *env) client() (*client.Client, error) {
	url := firstOf(e.url, e.getenv("MOAT_URL"), "http://127.0.0.1:8080")
	token := firstOf(e.token, e.getenv("MOAT_TOKEN"))
	var file string
	if token == "" {
		file = firstOf(e.getenv("MOAT_TOKEN_FILE"), filepath.Join(defaultData, auth.TokenFile))
		b, err := os.ReadFile(file)
		if err != nil && e.getenv("MOAT_TOKEN_FILE") != "" {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	c, err := client.New(url, token, firstOf(e.caFile, e.getenv("MOAT_CA_FILE")))
	if err == nil && token == "" {
		abs, _ := filepath.Abs(file)
		c.NoTokenHint(fmt.Sprintf("no token was sent: none in --token or $MOAT_TOKEN, and no file %s ($MOAT_TOKEN_FILE, default %s relative to the current folder)", abs, filepath.Join(defaultData, auth.TokenFile)))
	}
	return c, err
}

// print writes v as indented JSON with -o json, or calls text otherwise.
func (e *env) print(v any, text func(w io.Writer)) error {
	if e.output == "json" {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
			v = []any{} // an empty list is [], never null
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(e.stdout)
	return nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// errUsage marks errors in how a command was called.
var errUsage = errors.New("usage")
