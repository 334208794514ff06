package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/sign"
)

func newKeygenCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen NAME",
		Short: "Make an ed25519 signing key pair: NAME.key (0600, keep it secret) and NAME.pub",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := sign.GenerateKey(args[0])
			if err != nil {
				return err
			}
			return e.print(map[string]string{"key_id": pub.ID, "private": args[0] + ".key", "public": args[0] + ".pub"}, func(w io.Writer) {
				fmt.Fprintf(w, "key %s: private %s.key (keep it secret), public %s.pub (give it to nodes: moat serve --require-signature --trusted-key %s.pub)\n",
					pub.ID, args[0], args[0], args[0])
			})
		},
	}
}

func newSignCmd(e *env) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "sign PATH --key KEY",
		Short: "Sign a function folder: moat.yaml and every file it names, into moat.sig",
		Long: "Sign a function folder with an ed25519 key (moat keygen): the signature covers\n" +
			"the SHA-256 of moat.yaml and of every file it names, and is written to moat.sig\n" +
			"beside moat.yaml, which moat deploy sends along. Sign after building.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--key is required")
			}
			priv, err := sign.LoadPrivateKey(keyFile)
			if err != nil {
				return err
			}
			b, err := bundle.Read(args[0])
			if err != nil {
				return err
			}
			sig, err := sign.Sign(priv, b.Source, b.Files)
			if err != nil {
				return err
			}
			out := filepath.Join(b.Dir, sign.FileName)
			if err := os.WriteFile(out, sig, 0o644); err != nil {
				return err
			}
			res := struct {
				Function  string `json:"function"`
				Files     int    `json:"files"`
				Signature string `json:"signature"`
				Key       string `json:"key"`
			}{b.Manifest.Name, len(b.Files) + 1, out, sign.KeyID(priv.Public().(ed25519.PublicKey))}
			return e.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "signed %s (%d files) with key %s into %s\n", res.Function, res.Files, res.Key, res.Signature)
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the private key file (moat keygen)")
	return cmd
}
