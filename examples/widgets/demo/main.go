// Command demo runs the widget catalog on a Moat node in one command: the
// mail stand-in (an HTTPS mail API with its own CA, and an inbox for the
// browser), a node on its embedded default trusting that CA for egress,
// the examples deployed (hello, minimal and the widgets app), the
// MAILER_KEY secret set, and some stock in the inventory.
//
//	go run ./examples/widgets/demo
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/moatfn/moat/examples/widgets/mailer"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", ".moat", "the node's data directory")
	listen := flag.String("listen", "127.0.0.1:8080", "where the node listens")
	consoleListen := flag.String("console-listen", "127.0.0.1:8081", "where the operators' console listens (off: none)")
	mailAPI := flag.String("mail-api", "127.0.0.1:8443", "where the mail stand-in's HTTPS API listens")
	inbox := flag.String("inbox", "127.0.0.1:8025", "where the mail stand-in's inbox listens (plain HTTP, for the browser)")
	examples := flag.String("examples", "examples", "the examples folder")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as moat serve does
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	key, err := mailerKey(filepath.Join(*data, "demo-mailer.key"))
	if err != nil {
		return err
	}
	mail, err := mailer.Start(*mailAPI, *inbox, *data, key)
	if err != nil {
		return err
	}
	defer mail.Close()

	if *consoleListen == "off" {
		*consoleListen = ""
	}
	n, err := node.Start(ctx, log, node.Config{DataDir: *data, Listen: *listen, ConsoleListen: *consoleListen, EgressCAFile: mail.CAFile,
		// The operator lets grants reach the mail stand-in, which listens on loopback.
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx) }()
	token, err := os.ReadFile(filepath.Join(*data, auth.TokenFile))
	if err != nil {
		return err
	}
	c, err := client.New(n.URL(), strings.TrimSpace(string(token)), "")
	if err != nil {
		return err
	}
	if err := c.SetSecret(ctx, "MAILER_KEY", []byte(key)); err != nil {
		return fmt.Errorf("set MAILER_KEY: %w", err)
	}
	// The operator's boundary: only send-catalog may be granted the mail key.
	if err := c.SetSecretFunctions(ctx, "MAILER_KEY", []string{"send-catalog"}); err != nil {
		return fmt.Errorf("allow MAILER_KEY to send-catalog: %w", err)
	}
	if err := n.DeployDirs(ctx, []string{filepath.Join(*examples, "hello"), filepath.Join(*examples, "minimal")}); err != nil {
		return err
	}
	// The widgets app, with send-catalog's egress grant pointed at the stand-in.
	apiHost := strings.TrimPrefix(mail.API, "https://")
	dirs, _ := filepath.Glob(filepath.Join(*examples, "widgets", "*", "moat.yaml"))
	for _, m := range dirs {
		dir := filepath.Dir(m)
		log.Info("building", slog.String("dir", dir))
		if _, err := bundle.Build(ctx, dir); err != nil {
			return err
		}
		b, err := bundle.Read(dir)
		if err != nil {
			return err
		}
		b.Source = bytes.ReplaceAll(b.Source, []byte("127.0.0.1:8443"), []byte(apiHost))
		if _, err := c.Deploy(ctx, b); err != nil {
			return fmt.Errorf("deploy %s: %w", dir, err)
		}
	}
	if err := seed(ctx, n.URL(), strings.TrimSpace(string(token))); err != nil {
		return err
	}
	fmt.Printf("moat serving at %s\n", n.URL())
	fmt.Printf("  admin token: %s (mode 0600; client commands read it from there)\n", filepath.Join(*data, auth.TokenFile))
	if n.ConsoleURL() != "" {
		fmt.Printf("  the console: %s (sign in with the admin token, or a key: moat key create --role auditor)\n", n.ConsoleURL())
	}
	fmt.Printf("  the widget catalog: %s/fn/page/\n", n.URL())
	fmt.Printf("  the inbox: %s (the mail stand-in)\n", mail.Inbox)
	fmt.Printf("  try: curl %s/fn/hello?name=you\n", n.URL())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		return <-served
	}
}

// mailerKey reads the stand-in's API key, or makes one; the node holds it
// as the secret MAILER_KEY.
func mailerKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 16)
	rand.Read(raw)
	key := "mk_demo_" + hex.EncodeToString(raw)
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

// seed puts some widgets in stock through inventory-admin, as staff would.
func seed(ctx context.Context, url, token string) error {
	for item, body := range map[string]string{
		"blue/big":    `{"stock":12,"price":"12.50 EUR"}`,
		"green/small": `{"stock":30,"price":"4.20 EUR"}`,
		"red/tiny":    `{"stock":0,"price":"1.10 EUR"}`,
		"yellow/huge": `{"stock":2,"price":"99.00 EUR"}`,
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url+"/fn/inventory-admin/"+item, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("stock %s: %s", item, resp.Status)
		}
	}
	return nil
}
