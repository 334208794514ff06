package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/testwasm"
)

// BenchmarkGatewayMinimal is the node's own cost per invocation: the whole
// handler (lookup, admission, CGI, a fresh instance, response) for the
// smallest guest, without the network.
func BenchmarkGatewayMinimal(b *testing.B) {
	benchHandler(b, "name: minimal\nmodule: fn.wasm\nlimits: {memory: 1MiB, concurrency: 64}\nhttp: {auth: public}\n",
		"/fn/minimal", http.StatusOK)
}

// benchHandler times the node's whole handler, without the network, on GET
// path, with the minimal guest deployed under manifest; every answer must
// be want. One request goes first, to load the function (and spend a
// rate's one token).
func benchHandler(b *testing.B, manifest, path string, want int) {
	n := startNode(b, b.TempDir())
	deploy(b, n, manifest, testwasm.MinimalCGI())
	h := n.server.Handler
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if w.Code != want {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkHostCall measures what one host call costs a guest, from the
// guest's side: an invocation makes 1000 calls, and the cost of the same
// invocation making none is taken off. bare-kv-get is the same KV read made
// directly by Go code in the node, the baseline of the ratio.
func BenchmarkHostCall(b *testing.B) {
	n := startNodeConfig(b, Config{DataDir: b.TempDir(), NoSync: true})
	ctx := context.Background()
	setSecret(b, n, "API_KEY", "key-0123456789abcdef", "caps")
	deploy(b, n, capsManifest("caps", "permissions: {kv: {data: read-write}, secrets: [API_KEY]}\n"), testwasm.Bytes(b, "caps"))
	value := strings.Repeat("v", 100)
	h := n.server.Handler
	call := func(target string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/fn/caps"+target, nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ok":true`) {
			b.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
	}
	call("/kv/put?b=data&k=item&v=" + value)
	const calls = 1000
	perCall := func(b *testing.B, target string) {
		// The invocation without calls, measured first: the median of 21.
		base := make([]time.Duration, 21)
		for i := range base {
			start := time.Now()
			call(strings.Replace(target, "n=1000", "n=0", 1))
			base[i] = time.Since(start)
		}
		slices.Sort(base)
		b.ResetTimer()
		start := time.Now()
		for b.Loop() {
			call(target)
		}
		per := (time.Since(start)/time.Duration(b.N) - base[len(base)/2]) / calls
		b.ReportMetric(float64(per.Nanoseconds()), "ns/call")
	}
	b.Run("nop", func(b *testing.B) { perCall(b, "/loop?op=nop&n=1000") })
	b.Run("kv-get-100B", func(b *testing.B) { perCall(b, "/loop?op=kvget&b=data&k=item&n=1000") })
	b.Run("secret", func(b *testing.B) { perCall(b, "/loop?op=secret&name=API_KEY&n=1000") })
	b.Run("bare-kv-get-100B", func(b *testing.B) {
		kv, err := n.store.KV(ctx, "bench_bare", 1)
		if err != nil {
			b.Fatal(err)
		}
		kv.Put(ctx, "item", []byte(value))
		b.ResetTimer()
		for b.Loop() {
			if _, err := kv.Get(ctx, "item"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
	})
}

// BenchmarkGatewayReactor is the node's cost per invocation of a Go
// reactor: the reactor guest's JSON path through the whole handler.
func BenchmarkGatewayReactor(b *testing.B) {
	n := startNode(b, b.TempDir())
	deploy(b, n, "name: reactor\nmodule: fn.wasm\nlimits: {memory: 64MiB, concurrency: 64}\nhttp: {auth: public, methods: [POST]}\n", testwasm.Bytes(b, "reactor"))
	benchJSON(b, n, "/fn/reactor/json")
}

// benchJSON posts the JSON handler's body to path through the node's whole
// handler (no network) from parallel goroutines: ns/op is wall time with
// every core busy, so CPU per request is about GOMAXPROCS times it.
func benchJSON(b *testing.B, n *testNode, path string) {
	h := n.server.Handler
	body := `{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", path, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"sum":55.5`) {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// benchEvents deploys the guest under manifest (a queue trigger on
// bench.in) and returns a function that publishes one event and a channel
// that gets the function's name each time an event is delivered.
func benchEvents(b *testing.B, manifest string, wasm []byte) (*testNode, func(data string), chan string) {
	n := startNodeConfig(b, Config{DataDir: b.TempDir(), NoSync: true})
	deploy(b, n, manifest, wasm)
	done := make(chan string, 1<<16)
	watch := func(fn, outcome string) {
		if outcome == events.Delivered {
			done <- fn
		} else if outcome != events.Waited {
			b.Errorf("event %s", outcome)
		}
	}
	n.eventRec.watch.Store(&watch)
	ctx := context.Background()
	publish := func(data string) {
		ev := events.NewEvent("/bench", "", "bench.in", "application/json", []byte(data))
		if _, err := n.events.Publish(ctx, "bench.in", ev, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	publish(`{"name":"warm","items":[1]}`) // loads the function
	<-done
	return n, publish, done
}

const (
	benchMinimalEvents = "name: minimal\nmodule: fn.wasm\nlimits: {memory: 1MiB, concurrency: 64}\nhttp: {auth: public}\ntriggers:\n  - queue: {subject: bench.in, concurrency: %d}\n"
	benchSumEvents     = "name: sum\nmodule: fn.wasm\nlimits: {memory: 64MiB, concurrency: 64}\nhttp: {auth: public, methods: [POST]}\ntriggers:\n  - queue: {subject: bench.in, concurrency: %d}\n"
	benchSumBody       = `{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`
)

// BenchmarkEventThroughput publishes b.N events to a function whose queue
// trigger runs 32 at once and waits until all are handled (acknowledged):
// events/s is the rate from the first publish to the last acknowledgement.
// http-32 is the same guest over loopback HTTP from 32 clients, for
// comparison.
func BenchmarkEventThroughput(b *testing.B) {
	for _, g := range []struct {
		name, manifest, path string
		wasm                 func(testing.TB) []byte
	}{
		{"minimal", benchMinimalEvents, "/fn/minimal", func(testing.TB) []byte { return testwasm.MinimalCGI() }},
		{"sum", benchSumEvents, "/fn/sum", func(tb testing.TB) []byte { return mustRead(tb, testwasm.BuildDir(tb, examplesDir("sum"))) }},
	} {
		b.Run(g.name+"/events-32", func(b *testing.B) {
			_, publish, done := benchEvents(b, fmt.Sprintf(g.manifest, 32), g.wasm(b))
			b.ResetTimer()
			publishAll(b.N, func() { publish(benchSumBody) })
			for range b.N {
				<-done
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(g.name+"/http-32", func(b *testing.B) {
			n, _, _ := benchEvents(b, fmt.Sprintf(g.manifest, 1), g.wasm(b))
			url := n.URL() + g.path
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}} // kept alive, as bench/run's clients
			b.SetParallelism(16)                                                   // 32 clients on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Post(url, "application/json", strings.NewReader(benchSumBody))
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

// publishers publish at once, as a busy application's would.
const publishers = 4

// publishAll calls publish n times from publishers goroutines.
func publishAll(n int, publish func()) {
	for p := range publishers {
		go func() {
			for i := p; i < n; i += publishers {
				publish()
			}
		}()
	}
}

// BenchmarkBareJetStream is the floor under BenchmarkEventThroughput: the
// same embedded JetStream moving messages of the same size from 4
// publishers through a durable consumer that takes 32 at once and
// acknowledges each (confirmed), with no function, no sealing, no pipeline.
func BenchmarkBareJetStream(b *testing.B) {
	for _, c := range []struct {
		name               string
		pending, producers int
	}{{"throughput-32", 32, publishers}, {"latency", 1, 0}} {
		b.Run(c.name, func(b *testing.B) {
			js, done := bareJetStream(b, c.pending)
			ctx := context.Background()
			body := make([]byte, 400) // about a sealed event of benchSumBody
			publish := func() {
				if _, err := js.Publish(ctx, "bench.raw", body); err != nil {
					b.Error(err)
				}
			}
			if c.producers == 0 { // one at a time, each to its acknowledgement
				took := make([]time.Duration, 0, b.N)
				for b.Loop() {
					start := time.Now()
					publish()
					<-done
					took = append(took, time.Since(start))
				}
				reportLatency(b, took)
				return
			}
			b.ResetTimer()
			publishAll(b.N, publish)
			for range b.N {
				<-done
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
		})
	}
}

// bareJetStream is a stream on a node's embedded JetStream with a durable
// consumer taking pending messages at once, acknowledging each (confirmed)
// and then telling done.
func bareJetStream(b *testing.B, pending int) (jetstream.JetStream, chan struct{}) {
	n := startNodeConfig(b, Config{DataDir: b.TempDir(), NoSync: true})
	ctx := context.Background()
	js := n.store.JS
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.raw"}, Retention: jetstream.InterestPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: pending})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{}, 1<<16)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		go func() {
			m.DoubleAck(ctx)
			done <- struct{}{}
		}()
	}, jetstream.PullMaxMessages(pending))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	return js, done
}

func reportLatency(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkEventLatency publishes one event at a time and waits until it is
// handled: publish to acknowledgement, which includes the run, against an
// HTTP request to its response over loopback for the same guest. p50 and
// p99 are reported.
func BenchmarkEventLatency(b *testing.B) {
	report := reportLatency
	b.Run("minimal/event", func(b *testing.B) {
		_, publish, done := benchEvents(b, fmt.Sprintf(benchMinimalEvents, 1), testwasm.MinimalCGI())
		took := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			publish(benchSumBody)
			<-done
			took = append(took, time.Since(start))
		}
		report(b, took)
	})
	b.Run("minimal/http", func(b *testing.B) {
		n, _, _ := benchEvents(b, fmt.Sprintf(benchMinimalEvents, 1), testwasm.MinimalCGI())
		c := &http.Client{}
		took := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			resp, err := c.Post(n.URL()+"/fn/minimal", "application/json", strings.NewReader(benchSumBody))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took = append(took, time.Since(start))
		}
		report(b, took)
	})
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkGatewayJavaScript is BenchmarkGatewayReactor for the
// JavaScript runtime: bench/workerd/worker.js (the script workerd runs in
// bench/run), bundled and served by the whole handler without the network.
func BenchmarkGatewayJavaScript(b *testing.B) {
	n := startNode(b, b.TempDir())
	src, err := os.ReadFile(filepath.Join("..", "..", "bench", "workerd", "worker.js"))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "index.js"), src, 0o644)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: js\nmodule: dist/index.js\nlimits: {memory: 64MiB, concurrency: 64}\nhttp: {auth: public, methods: [GET, POST]}\n"), 0o644)
	if _, err := bundle.Build(context.Background(), dir); err != nil {
		b.Fatal(err)
	}
	deployDir(b, n, dir)
	benchJSON(b, n, "/fn/js/json")
}

// BenchmarkUploadToStart stores one object at a time through the control
// API (1 KiB, sealed, synced off as every figure here) into a bucket whose
// object trigger runs the minimal guest, and waits until that run is
// acknowledged: upload to handled, which holds the upload itself (reported
// alone as put-p50-µs), the relay of the description into an event, its
// delivery and the run.
func BenchmarkUploadToStart(b *testing.B) {
	n := startNodeConfig(b, Config{DataDir: b.TempDir(), NoSync: true})
	deploy(b, n, "name: minimal\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: public}\n"+
		"permissions: {objects: {uploads: read}}\ntriggers:\n  - object: {bucket: uploads}\n", testwasm.MinimalCGI())
	done := make(chan string, 1<<16)
	watch := func(fn, outcome string) {
		if outcome == events.Delivered {
			done <- fn
		}
	}
	n.eventRec.watch.Store(&watch)
	ctx := context.Background()
	data := bytes.Repeat([]byte("sku,qty\n"), 128)
	put := func(i int) {
		if _, err := n.client.PutObject(ctx, "uploads", fmt.Sprintf("in/%d.csv", i), "text/csv", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	put(-1) // loads the function
	<-done
	took, puts := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		start := time.Now()
		put(i)
		puts = append(puts, time.Since(start))
		<-done
		took = append(took, time.Since(start))
		i++
	}
	slices.Sort(puts)
	b.ReportMetric(float64(puts[len(puts)/2].Microseconds()), "put-p50-µs")
	reportLatency(b, took)
}
