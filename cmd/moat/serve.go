package main

import (
	"bytes"
	"fmt"
	"github.com/moatfn/moat/internal/duration"
	"github.com/moatfn/moat/internal/egress"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/node"
	"github.com/moatfn/moat/internal/sign"
)

func newServeCmd(e *env) *cobra.Command {
	var cfg node.Config
	var logLevel, jwksFile, hsFile string
	var trustedKeys []string
	var egressAllow []string
	var nodeInvocations, nodeGBSeconds string
	objectMax, bucketMax := "64MiB", "1GiB"
	var jwt auth.JWTConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start a node: embedded NATS store, sandbox, gateway and control API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if jwt.Issuer != "" || jwksFile != "" || hsFile != "" {
				if jwksFile != "" {
					src, err := auth.JWKSSource(jwksFile, jwt.Issuer, &http.Client{Timeout: 5 * time.Second})
					if err != nil {
						return fmt.Errorf("--jwt-jwks: %w", err)
					}
					if jwt.JWKS, err = src(cmd.Context()); err != nil {
						return fmt.Errorf("--jwt-jwks: %w", err)
					}
					jwt.Source = src
				}
				if hsFile != "" {
					b, err := os.ReadFile(hsFile)
					if err != nil {
						return fmt.Errorf("--jwt-hs256-secret-file: %w", err)
					}
					jwt.HS256 = bytes.TrimSpace(b)
				}
				jwt.Leeway = 30 * time.Second
				cfg.JWT = &jwt
			}
			for _, l := range []struct {
				flag, v string
				dst     *int64
			}{{"--object-max-size", objectMax, &cfg.ObjectLimits.Object}, {"--object-bucket-max-size", bucketMax, &cfg.ObjectLimits.Bucket}} {
				n, err := manifest.ParseSize(l.v)
				if err != nil || n <= 0 {
					return fmt.Errorf("%s: %q is not a positive size like 64MiB", l.flag, l.v)
				}
				*l.dst = int64(n)
			}
			if nodeInvocations != "" {
				b, err := manifest.ParseBudget(nodeInvocations, true)
				if err != nil {
					return fmt.Errorf("--node-budget-invocations: %w", err)
				}
				cfg.NodeBudget.Invocations = b
			}
			if nodeGBSeconds != "" {
				b, err := manifest.ParseBudget(nodeGBSeconds, false)
				if err != nil {
					return fmt.Errorf("--node-budget-gb-seconds: %w", err)
				}
				cfg.NodeBudget.GBSeconds = b
			}
			for _, v := range egressAllow {
				p, err := egress.ParseAllow(v)
				if err != nil {
					return fmt.Errorf("--egress-allow: %w", err)
				}
				cfg.EgressAllow = append(cfg.EgressAllow, p)
			}
			if len(trustedKeys) > 0 {
				keys, err := sign.LoadPublicKeys(trustedKeys)
				if err != nil {
					return fmt.Errorf("--trusted-key: %w", err)
				}
				cfg.TrustedKeys = keys
			}
			for flag, v := range map[string]string{"--vuln-block": cfg.VulnPolicy.Block, "--vuln-unknown": cfg.VulnPolicy.Unknown} {
				if !slices.Contains(manifest.Severities, v) && !(flag == "--vuln-block" && v == "none") {
					return fmt.Errorf("%s %q: want low, medium, high or critical", flag, v)
				}
			}
			if cfg.RequireSignature && len(cfg.TrustedKeys) == 0 {
				return fmt.Errorf("--require-signature needs at least one --trusted-key")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(log)
			jwt.Log = log
			if e.getenv("GOGC") == "" {
				// Every invocation allocates a little and frees it at once;
				// collecting less often halves the sandbox's own cost
				// (docs/performance.md). GOGC overrides it.
				debug.SetGCPercent(400)
			}
			if path := e.getenv("MOAT_CPUPROFILE"); path != "" {
				// For profiling a node under load (BENCHMARKS.md): a CPU
				// profile of the whole process until it stops.
				f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					return err
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			if cfg.ConsoleListen == "off" {
				cfg.ConsoleListen = ""
			}
			ctx := cmd.Context()
			n, err := node.Start(ctx, log, cfg)
			if err != nil {
				return err
			}
			if err := n.DeployDirs(ctx, cfg.Deploy); err != nil {
				log.Error("deploy on start", slog.Any("err", err))
			}
			fmt.Fprintf(e.stdout, "moat serving at %s\n", n.URL())
			fmt.Fprintf(e.stdout, "  admin token: %s (mode 0600; client commands read it from there)\n", filepath.Join(cfg.DataDir, auth.TokenFile))
			if n.ConsoleURL() != "" {
				fmt.Fprintf(e.stdout, "  console: %s (sign in with an API key or the admin token)\n", n.ConsoleURL())
			}
			for _, d := range cfg.Deploy {
				fmt.Fprintf(e.stdout, "  deployed %s\n", d)
			}
			if len(cfg.Deploy) > 0 {
				fmt.Fprintf(e.stdout, "  try: curl %s/fn/hello?name=you\n", n.URL())
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					if cfg.TLSCert != "" {
						if err := n.ReloadTLS(); err != nil {
							log.Error("tls reload", slog.Any("err", err))
						}
					}
					if jwt.Source != nil {
						if err := n.ReloadJWKS(ctx); err != nil {
							log.Error("jwks reload", slog.Any("err", err))
						}
					}
				}
			}()
			return n.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", defaultData, "data directory: the store, compiled code, the admin token")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve HTTP(S) on")
	f.StringVar(&cfg.ConsoleListen, "console-listen", "127.0.0.1:8081", "address of the operators' console, its own origin (off: none; a non-loopback address needs TLS)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate file")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key file")
	f.BoolVar(&cfg.TLSSelfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept under the data directory")
	f.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address")
	f.StringVar(&cfg.NATSURL, "nats", "", "use the NATS server at this URL instead of the embedded one")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "let NATS clients reach the embedded server at host:port (default: no port)")
	f.BoolVar(&cfg.NoSync, "no-fsync", false, "acknowledge writes before they reach the disk: faster, loses acknowledged writes on power loss")
	f.StringArrayVar(&cfg.Deploy, "deploy", nil, "function folder to build and deploy on start (repeatable)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&cfg.UnauditedRuns, "unaudited-invocations", false, "do not audit invocations: only for benchmarks that measure auditing")
	f.MarkHidden("unaudited-invocations")
	f.Var(duration.Flag{D: &cfg.DormantAfter}, "dormant-after", "how long without an invocation makes a function dormant in moat posture (default 30d)")
	f.BoolVar(&cfg.DisableDormant, "disable-dormant", false, "disable dormant functions, checked hourly and audited; moat enable NAME (or a deploy) brings one back")
	f.Var(duration.Flag{D: &cfg.EventAckWait}, "event-ack-wait", "how long an event held by a node that stopped answering waits before it is delivered again (default 30s)")
	f.Var(duration.Flag{D: &cfg.AuditMaxAge}, "audit-retention", "drop audit records older than this, like 90d (default: keep every record)")
	f.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "the master key that wraps the keys of secrets and KV values, mode 0600 (default DATA/master.key, created on first start)")
	f.StringVar(&objectMax, "object-max-size", objectMax, "cap on one object in an object bucket")
	f.StringVar(&bucketMax, "object-bucket-max-size", bucketMax, "cap on the bytes one object bucket stores; a put past it is refused")
	f.StringVar(&nodeInvocations, "node-budget-invocations", "", "cap on invocations of all functions together per window, like 1000000/day (default: none)")
	f.StringVar(&nodeGBSeconds, "node-budget-gb-seconds", "", "cap on GB-seconds of all functions together per window, like 5000/month (default: none)")
	f.Var(duration.Flag{D: &cfg.UsageRetention}, "usage-retention", "drop usage records older than this, like 90d (default: keep them)")
	f.StringVar(&cfg.VulnPolicy.Block, "vuln-block", "high", "refuse deploys with an advisory of this severity or above that has a fix: low, medium, high, critical or none")
	f.StringVar(&cfg.VulnPolicy.Unknown, "vuln-unknown", "high", "severity assumed for advisories that give none (the Go database gives none)")
	f.BoolVar(&cfg.VulnPolicy.Disable, "vuln-disable", false, "disable a deployed function when a new import finds a blocking advisory in it, until it is redeployed or excepted")
	f.BoolVar(&cfg.RequireSignature, "require-signature", false, "deploy only functions signed (moat sign) by a --trusted-key")
	f.StringArrayVar(&trustedKeys, "trusted-key", nil, "public key file (moat keygen) whose signatures deploys may carry (repeatable)")
	f.StringArrayVar(&egressAllow, "egress-allow", nil, "a loopback, private or link-local range (CIDR or one address) that functions' egress grants may name (repeatable); none by default")
	f.StringVar(&cfg.EgressCAFile, "egress-ca-file", "", "PEM bundle of CAs that functions' HTTPS calls trust besides the system roots")
	f.Float64Var(&cfg.Prices.PerMillionInvocations, "price-per-million-invocations", 0.20, "for moat usage cost estimates")
	f.Float64Var(&cfg.Prices.PerGBSecond, "price-per-gb-second", 0.0000166667, "for moat usage cost estimates")
	f.IntVar(&cfg.MaxInstances, "max-instances", 128, "function instances running at once, all functions together")
	f.IntVar(&cfg.MaxConnections, "max-connections", 10_000, "connections open at once, all clients together (-1: no bound)")
	f.IntVar(&cfg.MaxConnectionsPerSource, "max-connections-per-source", 256, "connections open at once from one source address (-1: no bound; raise it behind a proxy)")
	f.Float64Var(&cfg.ConnectionRatePerSource, "connection-rate-per-source", 100, "new connections a second from one source address, in bursts of twice that (-1: no bound; raise it behind a proxy)")
	f.Int64Var(&cfg.MaxMemory, "max-memory", 8<<30, "bound in bytes on the sum of the memory caps of running instances")
	f.StringVar(&jwksFile, "jwt-jwks", "", "JWKS of the keys that sign JWTs for functions with auth: jwt (RS256, ES256, EdDSA): a file, or an https:// URL on the issuer's host; reloaded on SIGHUP and on an unknown kid (at most every 30s)")
	f.StringVar(&jwt.Issuer, "jwt-issuer", "", "the iss every accepted JWT must carry")
	f.StringVar(&jwt.Audience, "jwt-audience", "", "the aud every accepted JWT must carry")
	f.StringVar(&hsFile, "jwt-hs256-secret-file", "", "enable HS256 JWTs with the secret in this file (at least 32 bytes)")
	return cmd
}
