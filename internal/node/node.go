// Package node wires one Moat node: the store, the sandbox, the registry,
// the function logs, the gateway and the control API behind one HTTP server.
package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/moatfn/moat/internal/admit"
	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/connlimit"
	"github.com/moatfn/moat/internal/console"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/framing"
	"github.com/moatfn/moat/internal/gateway"
	"github.com/moatfn/moat/internal/host"
	"github.com/moatfn/moat/internal/logcap"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/metrics"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/pipeline"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/secrets"
	"github.com/moatfn/moat/internal/sign"
	"github.com/moatfn/moat/internal/store"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/usage"
)

// Config is a node's configuration, from `moat serve` flags.
type Config struct {
	DataDir       string
	Listen        string // host:port of the HTTP(S) listener
	TLSCert       string
	TLSKey        string
	TLSSelfSigned bool
	InsecureHTTP  bool            // allow plain HTTP on a non-loopback address
	NATSURL       string          // use this NATS instead of the embedded server
	NATSListen    string          // let NATS clients reach the embedded server here
	NoSync        bool            // acknowledge writes before they reach the disk (tests and benchmarks)
	Deploy        []string        // function folders to build (if Go) and deploy on start
	MaxMemory     int64           // bound on the sum of memory caps of running instances
	MaxInstances  int             // bound on running instances
	JWT           *auth.JWTConfig // accept these JWTs for functions with auth: jwt; nil accepts none
	AuditMaxAge   time.Duration   // audit retention; 0 keeps every record
	UnauditedRuns bool            // for benchmarks only: invocations and refusals go unrecorded
	Prices        usage.Prices    // for usage cost estimates
	DrainTimeout  time.Duration
	// MasterKeyFile holds the key that wraps the data keys of secrets and
	// KV values; "" is DataDir/master.key, created on first start.
	MasterKeyFile string
	// EgressCAFile, if set, is a PEM bundle trusted for functions' HTTPS
	// calls besides the system roots.
	EgressCAFile string
	// ObjectLimits caps one object and one object bucket; zero values are
	// objstore's defaults (64MiB, 1GiB).
	ObjectLimits objstore.Limits
	// EgressAllow are the non-public ranges (loopback, private,
	// link-local, metadata) egress grants may name; none by default.
	EgressAllow []netip.Prefix
	// RequireSignature refuses deploys not signed by one of TrustedKeys.
	RequireSignature bool
	TrustedKeys      []sign.PublicKey
	// NodeBudget caps what all functions together may spend per window.
	NodeBudget manifest.Budget
	// UsageRetention drops usage records older than this; 0 keeps them.
	UsageRetention time.Duration
	// VulnPolicy decides what advisories in a deploy's dependencies do.
	VulnPolicy supply.Policy
	// MaxConnections and MaxConnectionsPerSource bound the connections
	// open at once, in all and from one source address: 0 is the default
	// (10,000 and 256), -1 no bound.
	MaxConnections, MaxConnectionsPerSource int
	// ConnectionRatePerSource bounds the new connections a second from one
	// source address, in bursts of twice that: 0 is the default (100), -1
	// no bound.
	ConnectionRatePerSource float64
	// BodyWait is how long a function's request body may take to arrive;
	// 0 is 30s.
	BodyWait time.Duration
	// DormantAfter is how long without an invocation makes a function
	// dormant for the posture checks; 0 is 30 days.
	DormantAfter time.Duration
	// DisableDormant disables dormant functions, checked every
	// DormantSweep (0 is an hour); moat enable brings one back.
	DisableDormant bool
	DormantSweep   time.Duration
	// EventAckWait is how long an event delivered to a node may go without
	// word from it before it is delivered again; 0 is 30s.
	EventAckWait time.Duration
	// ConsoleListen is where the operators' console serves, on its own
	// origin; "" serves none. A non-loopback address needs TLS, as the
	// node's own listener does.
	ConsoleListen string
}

// Node is a running node.
type Node struct {
	log      *slog.Logger
	cfg      Config
	store    *store.Store
	sandbox  *sandbox.Runtime
	early    *registry.Early
	registry *registry.Registry
	pipeline *pipeline.Pipeline
	events   *events.Bus
	eventRec *eventRecorder
	jwt      *auth.JWTVerifier // nil without JWTs
	api      *api.API
	refusals *audit.Coalescer
	logs     *fnlog.Log
	metrics  *metrics.Metrics
	budgets  *admit.Budgets
	audit    *audit.Log
	usage    *usage.Meter
	grants   *host.Grants
	keyring  *seal.Keyring
	dataKeys *seal.DataKeys
	secrets  *secrets.Store
	supply   *supplyChain
	server   *http.Server
	listener net.Listener
	url      string
	// The console, on its own listener; nil without one.
	console    *console.Console
	consoleSrv *http.Server
	consoleLn  net.Listener
	consoleURL string
	certs      *certificate // nil without TLS
}

// ReloadTLS reads the certificate and key files again; connections made
// after it get the new certificate. On failure the old one keeps serving.
// sweepDormant disables dormant functions every DormantSweep until ctx
// ends (--disable-dormant).
func (n *Node) sweepDormant(ctx context.Context) {
	every := n.cfg.DormantSweep
	if every == 0 {
		every = time.Hour
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := n.api.DisableDormant(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("disable dormant functions", slog.Any("err", err))
		}
	}
}

// ReloadJWKS fetches the JWKS anew from its file or URL; the keys in use
// stay when the new set holds none that can be used.
func (n *Node) ReloadJWKS(ctx context.Context) error {
	if n.jwt == nil {
		return errors.New("no JWTs configured")
	}
	return n.jwt.Reload(ctx)
}

func (n *Node) ReloadTLS() error {
	if n.certs == nil {
		return errors.New("not serving TLS")
	}
	if err := n.certs.load(); err != nil {
		return err
	}
	n.log.Info("tls certificate reloaded", slog.String("cert", n.certs.certFile))
	return nil
}

// Start opens the store, compiles nothing yet, and starts listening. Serve
// must be called to serve.
func Start(ctx context.Context, log *slog.Logger, cfg Config) (n *Node, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("no data directory")
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = 8 << 30
	}
	if cfg.MaxInstances == 0 {
		cfg.MaxInstances = 128
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 10_000
	}
	if cfg.MaxConnectionsPerSource == 0 {
		cfg.MaxConnectionsPerSource = 256
	}
	if cfg.ConnectionRatePerSource == 0 {
		cfg.ConnectionRatePerSource = 100
	}
	if cfg.Prices == (usage.Prices{}) {
		cfg.Prices = usage.Prices{PerMillionInvocations: 0.20, PerGBSecond: 0.0000166667}
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 16 * time.Minute // the longest function timeout, and a margin
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	tlsConfig, certs, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tlsConfig == nil && !cfg.InsecureHTTP && !isLoopback(cfg.Listen) {
		return nil, fmt.Errorf("listen %s: a non-loopback address needs TLS (--tls-cert and --tls-key, or --tls-self-signed) or --insecure-http", cfg.Listen)
	}
	if tlsConfig == nil && cfg.ConsoleListen != "" && !isLoopback(cfg.ConsoleListen) {
		// No --insecure-http here: an operator's session must not cross
		// a network in the clear.
		return nil, fmt.Errorf("console listen %s: a non-loopback address needs TLS (--tls-cert and --tls-key, or --tls-self-signed)", cfg.ConsoleListen)
	}
	begin := time.Now()
	admin, created, err := auth.LoadAdmin(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n = &Node{log: log, cfg: cfg, certs: certs}
	// Every failure below returns nil for the node: close what was
	// started through a pointer of its own.
	started := n
	defer func() {
		if err != nil {
			started.close()
		}
	}()
	n.sandbox, err = sandbox.New(ctx, log, filepath.Join(cfg.DataDir, "cache", "wazero"))
	if err != nil {
		return nil, err
	}
	// What was loaded when the node last ran compiles while the store
	// starts: most of a restart's first response (docs/sandbox.md).
	moduleCache := filepath.Join(cfg.DataDir, "cache", "modules")
	n.early = registry.StartEarly(log, n.sandbox, moduleCache)
	sandboxReady := time.Now()
	n.store, err = store.Open(ctx, log, store.Config{Dir: cfg.DataDir, URL: cfg.NATSURL, Listen: cfg.NATSListen, SyncAlways: !cfg.NoSync})
	if err != nil {
		return nil, err
	}
	log.Debug("startup", slog.Duration("sandbox", sandboxReady.Sub(begin)), slog.Duration("store", time.Since(sandboxReady)))
	kv, err := n.store.KV(ctx, "moat_functions", 5)
	if err != nil {
		return nil, err
	}
	objects, err := n.store.Objects(ctx, "moat_modules")
	if err != nil {
		return nil, err
	}
	n.registry = registry.New(log, kv, objects, n.sandbox, moduleCache)
	n.registry.UseEarly(n.early)
	n.logs, err = fnlog.Open(ctx, log, n.store, n.store.JS)
	if err != nil {
		return nil, err
	}
	nodeID, auditKey, err := audit.LoadIdentity(filepath.Join(cfg.DataDir, "node.id"), filepath.Join(cfg.DataDir, "audit.key"))
	if err != nil {
		return nil, err
	}
	headFile := filepath.Join(cfg.DataDir, "audit.head")
	n.audit, err = audit.Open(ctx, log, n.store, n.store.JS, audit.Config{Node: nodeID, Key: auditKey, HeadFile: headFile, MaxAge: cfg.AuditMaxAge})
	if err != nil {
		return nil, err
	}
	trail := &audit.Trail{Log: n.audit, JS: n.store.JS, Public: auditKey.Public().(ed25519.PublicKey), HeadFile: headFile}
	keysKV, err := n.store.KV(ctx, "moat_keys", 1)
	if err != nil {
		return nil, err
	}
	keys, err := auth.NewKeys(ctx, log, admin, keysKV)
	if err != nil {
		return nil, err
	}
	var jwt *auth.JWTVerifier
	if cfg.JWT != nil {
		if jwt, err = auth.NewJWTVerifier(*cfg.JWT); err != nil {
			return nil, err
		}
		n.jwt = jwt
	}
	// Ten bad credentials from one address, then one more a minute.
	failures := auth.NewFailureLimiter(10, time.Minute, 100_000)
	var verifier interface {
		Verify(string) (*auth.Claims, error)
	}
	if jwt != nil {
		verifier = jwt
	}
	budgetKV, err := n.store.KV(ctx, "moat_budgets", 1)
	if err != nil {
		return nil, err
	}
	n.budgets = admit.NewBudgets(log, budgetKV, 0.8)
	n.budgets.SetNode(cfg.NodeBudget)
	// Refusals that answer a flood are audited once per kind and second,
	// with a count (docs/audit.md).
	n.refusals = audit.NewCoalescer(n.audit, time.Second, 4096, coalesced...)
	var gatewayAudit interface {
		Append(context.Context, audit.Record, bool) error
	} = n.refusals
	if cfg.UnauditedRuns {
		gatewayAudit = discard{}
		log.Warn("invocations are not audited (--unaudited-invocations): for benchmarks only")
	}
	adm := admit.New(admit.Config{MaxInstances: cfg.MaxInstances, MaxMemory: cfg.MaxMemory, QueueWait: time.Second, MaxCallers: 10_000})
	n.metrics = metrics.New(func() float64 { return float64(adm.Running()) })
	n.metrics.SetBudgets(func() []metrics.Budget {
		var out []metrics.Budget
		for _, r := range n.budgets.Remaining() {
			out = append(out, metrics.Budget{Function: r.Function, Budget: r.Budget, Window: r.Window, Left: r.Left})
		}
		return out
	})
	n.budgets.OnAlert = func(ctx context.Context, a admit.Alert) {
		err := n.audit.Append(ctx, audit.Record{Action: "budget.alert", Target: a.Function, Outcome: audit.OK,
			Reason: fmt.Sprintf("%s %s: %.4g of %.4g reserved (%.0f%%)", a.Budget, a.Window, a.Reserved, a.Amount, 100*a.Reserved/a.Amount)}, false)
		if err != nil {
			log.Error("audit append", slog.String("action", "budget.alert"), slog.Any("err", err))
		}
	}
	usageKV, err := n.store.KVMaxAge(ctx, "moat_usage", cfg.UsageRetention)
	if err != nil {
		return nil, err
	}
	n.usage = usage.New(log, usageKV)
	n.pipeline = pipeline.New(log, n.registry, adm, n.budgets, recorders{n.metrics, n.usage}, gatewayAudit, n.logs, pipeline.Config{
		MaxLog: 64 << 10, MaxLogLines: 1000,
	})
	gw := gateway.New(log, n.pipeline, keys, verifier, failures, gateway.Config{BodyWait: cfg.BodyWait})
	caps, err := n.capabilities(ctx, gw)
	if err != nil {
		return nil, err
	}
	n.eventRec = &eventRecorder{metrics: n.metrics}
	n.events, err = events.Open(ctx, log, n.store.JS, n.dataKeys, n.pipeline, n.eventRec, events.Config{Functions: kv, AckWait: cfg.EventAckWait})
	if err != nil {
		return nil, err
	}
	caps.host.SetEvents(hostEvents{n.events})
	n.metrics.SetLag(n.eventLag)
	if n.supply, err = openSupplyChain(ctx, n); err != nil {
		return nil, err
	}
	n.registry.Check = n.deployChecks(caps)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle(gateway.Prefix, gw)
	mux.Handle("GET /metrics", api.Guard(keys, failures, []string{auth.RoleAdmin, auth.RoleAuditor}, n.metrics.Handler()))
	stopping, stop := context.WithCancel(context.Background())
	n.api = api.New(log, api.Services{
		Functions: n.registry, Logs: n.logs, Identify: keys, Keys: keys, Failures: failures,
		Usage: n.usage, Prices: cfg.Prices, Audit: n.refusals, Trail: trail,
		Secrets: caps.secrets, Buckets: caps.kv, Objects: caps.objects, Grants: n.grants, Rotate: n.rotateMaster,
		Supply: api.Supply(n.supply), Events: n.events,
		Posture: api.PostureConfig{DormantAfter: cfg.DormantAfter, RequireSignature: cfg.RequireSignature},
		Budgets: n.budgets, Health: n.store.Health,
	}, stopping)
	mux.Handle(api.Prefix, n.api)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.Problem(w, http.StatusNotFound, "not found", "functions are under /fn/NAME, the control API under /api/v1/")
	})
	var handler http.Handler = mux
	if tlsConfig != nil {
		handler = hsts(mux)
	}
	handler = framing.CloseAmbiguous(handler)
	n.server = &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // a deploy of a large module on a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10, // framing.Guard hands on unchecked only what is past this
		// net/http's own lines (a bad TLS handshake, a malformed request)
		// come at a stranger's will: one a second, with a count.
		ErrorLog:    slog.NewLogLogger(logcap.New(time.Second, 1).Handler(log.Handler(), "http server"), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	n.server.RegisterOnShutdown(stop)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	// Bounded before TLS: a connection past a bound costs no handshake.
	connLog := logcap.New(time.Second, 4096)
	bounded := connlimit.New(ln, connlimit.Bounds{
		Max: max(cfg.MaxConnections, 0), PerSource: max(cfg.MaxConnectionsPerSource, 0), Rate: max(cfg.ConnectionRatePerSource, 0),
	}, func(src, reason string) {
		n.metrics.ConnectionRefused(reason)
		connLog.Log(context.Background(), log, slog.LevelWarn, src, "connection refused", slog.String("reason", reason), slog.String("source", src))
	})
	n.server.ConnState = bounded.State // idle connections give way at a bound
	ln = bounded
	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	} else {
		// Plaintext is how a proxy in front reaches the node: a request it
		// could frame differently from net/http is refused (TLS ends at the
		// node, so no second parser reads those bytes).
		ln = framing.Guard(ln, func(remote, reason string) {
			src, _, _ := net.SplitHostPort(remote)
			n.metrics.ConnectionRefused("framing")
			connLog.Log(context.Background(), log, slog.LevelWarn, src, "request refused for ambiguous framing", slog.String("reason", reason), slog.String("source", src))
		})
	}
	n.listener = ln
	n.url = scheme + "://" + ln.Addr().String()
	if cfg.ConsoleListen != "" {
		if err = n.startConsole(ctx, keys, failures, nodeID, tlsConfig); err != nil {
			return nil, err
		}
	}
	log.Info("node started", slog.String("url", n.url), slog.String("console", n.consoleURL), slog.String("data", cfg.DataDir),
		slog.String("admin_token_file", filepath.Join(cfg.DataDir, auth.TokenFile)), slog.Bool("admin_token_created", created))
	return n, nil
}

// URL is where the node serves, e.g. "http://127.0.0.1:8080".
func (n *Node) URL() string { return n.url }

// ConsoleURL is where the console serves, e.g. "http://127.0.0.1:8081";
// "" without one.
func (n *Node) ConsoleURL() string { return n.consoleURL }

// startConsole listens for the console: its own server, bounded like the
// node's, so that it stays reachable while functions are flooded.
func (n *Node) startConsole(ctx context.Context, keys *auth.Keys, failures *auth.FailureLimiter, nodeID string, tlsConfig *tls.Config) error {
	ln, err := net.Listen("tcp", n.cfg.ConsoleListen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("console listen: %w (another node's console? give this one --console-listen ADDR, or off)", err)
		}
		return fmt.Errorf("console listen: %w", err)
	}
	ccfg := console.Config{API: n.api, Identify: keys, Failures: failures, Audit: n.refusals, TLS: tlsConfig != nil, Node: nodeID}
	if isLoopback(ln.Addr().String()) {
		ccfg.Hosts = console.LoopbackHosts(ln.Addr().String())
	}
	n.console = console.New(n.log, ccfg)
	connLog := logcap.New(time.Second, 4096)
	bounded := connlimit.New(ln, connlimit.Bounds{Max: 1000, PerSource: 64, Rate: 50}, func(src, reason string) {
		connLog.Log(context.Background(), n.log, slog.LevelWarn, src, "console connection refused", slog.String("reason", reason), slog.String("source", src))
	})
	var handler http.Handler = n.console
	ln = bounded
	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	n.consoleSrv = &http.Server{
		Handler:           framing.CloseAmbiguous(handler),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnState:         bounded.State,
		ErrorLog:          slog.NewLogLogger(logcap.New(time.Second, 1).Handler(n.log.Handler(), "console server"), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	n.consoleLn = ln
	n.consoleURL = scheme + "://" + ln.Addr().String()
	return nil
}

// InstancesStarted returns how many function instances the node started.
func (n *Node) InstancesStarted() uint64 { return n.sandbox.Started() }

// Registry is the node's function registry.
func (n *Node) Registry() *registry.Registry { return n.registry }

// Serve serves until ctx ends, then drains: it stops accepting, lets
// in-flight requests finish within the drain timeout, and closes the store.
func (n *Node) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- n.server.Serve(n.listener) }()
	if n.consoleSrv != nil {
		go n.consoleSrv.Serve(n.consoleLn)
	}
	meterCtx, stopMeter := context.WithCancel(context.Background())
	metered := make(chan struct{})
	go func() {
		defer close(metered)
		var wg sync.WaitGroup
		wg.Go(func() { n.grants.Run(meterCtx, 5*time.Second) })
		n.usage.Run(meterCtx, 5*time.Second)
		wg.Wait()
	}()
	auditCtx, stopAudit := context.WithCancel(context.Background())
	audited := make(chan struct{})
	go func() {
		defer close(audited)
		n.audit.Run(auditCtx, 10*time.Second)
	}()
	refusalsCtx, stopRefusals := context.WithCancel(context.Background())
	refused := make(chan struct{})
	go func() {
		defer close(refused)
		n.refusals.Run(refusalsCtx)
	}()
	if n.cfg.DisableDormant {
		go n.sweepDormant(ctx)
	}
	eventsCtx, stopEvents := context.WithCancel(context.Background())
	defer stopEvents()
	if err := n.events.Start(eventsCtx); err != nil {
		n.log.Error("event triggers", slog.Any("err", err))
	}
	preloadCtx, stopPreload := context.WithCancel(ctx)
	preloaded := make(chan struct{})
	go func() {
		defer close(preloaded)
		n.registry.Preload(preloadCtx)
	}()
	// The sandbox must outlive every compile: wait for the preload before
	// closing it.
	defer func() { stopPreload(); <-preloaded }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		n.log.Info("draining", slog.Duration("timeout", n.cfg.DrainTimeout))
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.DrainTimeout)
		err = n.server.Shutdown(sctx)
		cancel()
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if n.consoleSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.consoleSrv.Shutdown(sctx) // its log tails ended with the API's stopping
		cancel()
	}
	n.events.Stop(n.cfg.DrainTimeout) // lets running events finish
	stopEvents()
	stopPreload()
	<-preloaded
	stopMeter() // flushes what the drained requests metered
	<-metered
	stopRefusals() // audits the refusals counted in open windows
	<-refused
	stopAudit() // publishes the last records and signs the head
	<-audited
	n.close()
	n.log.Info("node stopped")
	return err
}

// eventLag reads what each trigger has waiting, for /metrics.
func (n *Node) eventLag() []metrics.Lag {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []metrics.Lag
	for _, fn := range n.events.Functions() {
		states, err := n.events.Triggers(ctx, fn)
		if err != nil {
			continue
		}
		for _, s := range states {
			out = append(out, metrics.Lag{Function: fn, Subject: s.Subject, Pending: float64(s.Pending), InFlight: float64(s.InFlight), DeadLetters: float64(s.DeadLetters)})
		}
	}
	return out
}

// expandApps replaces a folder that holds no moat.yaml but has function
// folders under it (an app, like examples/widgets) with those folders,
// sorted.
func expandApps(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, manifest.FileName)); err == nil {
			out = append(out, d)
			continue
		}
		subs, _ := filepath.Glob(filepath.Join(d, "*", manifest.FileName))
		if len(subs) == 0 {
			out = append(out, d) // and let bundle.Read say what is missing
			continue
		}
		slices.Sort(subs)
		for _, s := range subs {
			out = append(out, filepath.Dir(s))
		}
	}
	return out
}

// DeployDirs builds (when they hold Go sources) and deploys function folders.
func (n *Node) DeployDirs(ctx context.Context, dirs []string) error {
	for _, d := range expandApps(dirs) {
		if bundle.HasSources(d) {
			n.log.Info("building", slog.String("dir", d))
			if _, err := bundle.Build(ctx, d); err != nil {
				return err
			}
		}
		b, err := bundle.Read(d)
		if err != nil {
			return err
		}
		v, err := n.registry.Deploy(ctx, &registry.Upload{Manifest: b.Source, Files: b.Files, Signature: b.Signature, Actor: "serve --deploy"})
		rec := audit.Record{Action: "deploy", Actor: "serve --deploy", Target: b.Manifest.Name, Outcome: audit.OK}
		if err != nil {
			rec.Outcome, rec.Reason = audit.Failed, err.Error()
		} else {
			rec.Version = v.ID
		}
		if aerr := n.audit.Append(ctx, rec, true); aerr != nil {
			return errors.Join(err, aerr)
		}
		if err != nil {
			return fmt.Errorf("deploy %s: %w", d, err)
		}
		n.log.Info("function deployed", slog.String("fn", v.Manifest.Name), slog.String("version", v.ID))
	}
	return nil
}

func (n *Node) close() {
	if n.consoleLn != nil {
		n.consoleLn.Close() // already, if it served
	}
	if n.budgets != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.budgets.Close(ctx)
		cancel()
	}
	if n.logs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.logs.Flush(ctx)
		cancel()
	}
	if n.registry != nil {
		n.registry.Close()
	}
	if n.secrets != nil {
		n.secrets.Close()
	}
	n.early.Close() // before the sandbox it compiles in
	if n.sandbox != nil {
		n.sandbox.Close(context.Background())
	}
	if n.store != nil {
		n.store.Close()
	}
}

// coalesced are the refusals audited once per kind and second: the answers
// to a flood, whose records would differ only in time and invocation id.
// A missing or wrong credential is among them: it comes before any limit,
// so a stranger could otherwise write a record per request; the first of
// each source in a second is kept whole, the rest counted. The others
// (input, method, body) come after the function's rate limit and are
// audited one by one.
var coalesced = [][2]string{
	{"refuse", admit.ReasonRate}, {"refuse", admit.ReasonCallerRate}, {"refuse", admit.ReasonBusy},
	{"refuse", admit.ReasonCapacity}, {"refuse", admit.ReasonBudget}, {"refuse", admit.ReasonNodeBudget},
	{"refuse", gateway.ReasonAuth}, {"refuse", gateway.ReasonAuthBlocked},
	{"auth.fail", api.ReasonCredential}, {"auth.fail", api.ReasonBlocked},
}

// discard drops audit records: only for benchmarks that measure auditing.
type discard struct{}

func (discard) Append(context.Context, audit.Record, bool) error { return nil }

// recorders hands each invocation and refusal to the metrics and the meter.
type recorders struct {
	m *metrics.Metrics
	u *usage.Meter
}

func (r recorders) Invocation(fn string, status int, took time.Duration, memory int64) {
	r.m.Invocation(fn, status, took, memory)
	r.u.Invocation(fn, status, took, memory)
}

func (r recorders) Refusal(fn, reason string) {
	r.m.Refusal(fn, reason)
	r.u.Refusal(fn, reason)
}

// hsts tells browsers to come back only over HTTPS.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
