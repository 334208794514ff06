// Command moatbench measures a Moat node against a bare Go net/http server
// doing the same work natively, in one run on one machine: cold start,
// warm latency, throughput and server CPU per request. bench/run drives it.
//
// Both servers run as their own processes; the load comes from this one over
// loopback, so the ratios compare like with like. Throughput is measured in
// interleaved rounds and the median kept, because these machines are shared.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/client"
)

func main() {
	moatBin := flag.String("moat", "bench/out/moat", "moat binary")
	bareBin := flag.String("bare", "bench/out/bare", "bare Go server binary")
	duration := flag.Duration("duration", 3*time.Second, "length of one throughput measurement")
	rounds := flag.Int("rounds", 3, "interleaved rounds of throughput measurements")
	conc := flag.Int("c", 32, "concurrent clients")
	seq := flag.Int("n", 1000, "sequential requests for the latency figures")
	probeURL := flag.String("probe", "", "internal: time sequential GETs of this URL, 1 ms apart, until stdin closes or -probe-n are done; print them in ns")
	probeN := flag.Int("probe-n", 0, "internal: requests for -probe; 0 runs until stdin closes")
	floodURL := flag.String("flood", "", "internal: send the flood's 10,000 requests to this URL; print admitted, refused and the last send in ns")
	floodPace := flag.Int("flood-pace", 0, "internal: requests a second for -flood; 0 is as fast as possible")
	floodClients := flag.Int("flood-clients", 32, "internal: concurrent clients for -flood")
	loadURL := flag.String("load", "", "load this URL from -c clients for -duration and print requests a second (for A/B comparisons of two nodes)")
	loadPost := flag.Bool("post", false, "with -load, POST the JSON handler's body (for /fn/sum and /json) instead of GET")
	only := flag.String("only", "", "run one section alone on a fresh node: \"flood\" (the flood section -rounds times) or \"js\" (JavaScript beside workerd)")
	flag.Parse()
	log.SetFlags(0)
	if *probeURL != "" {
		runProbe(*probeURL, *probeN)
		return
	}
	if *loadURL != "" {
		run := load
		if *loadPost {
			run = postJSON
		}
		run(*loadURL, *conc, time.Second) // warm up
		n, errs, took := run(*loadURL, *conc, *duration)
		fmt.Printf("%.0f requests/s (%d errors)\n", float64(n)/took.Seconds(), errs)
		return
	}
	if *floodURL != "" {
		admitted, refused, last := sendFlood(*floodURL, *floodPace, *floodClients)
		fmt.Println(admitted, refused, int64(last))
		return
	}
	ctx := context.Background()
	if *only == "flood" {
		floodOnly(ctx, *moatBin, *bareBin, *rounds)
		return
	}
	if *only == "js" {
		jsOnly(ctx, *moatBin, *bareBin, *conc, *rounds, *duration, *seq)
		return
	}

	fmt.Printf("# moatbench %s, %s/%s, %d CPUs, %s\n\n", time.Now().UTC().Format(time.RFC3339), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if _, err := bundle.Build(ctx, "examples/hello"); err != nil {
		log.Fatal(err)
	}
	hello, err := bundle.Read("examples/hello")
	check(err)
	minimal, err := bundle.Read("examples/minimal")
	check(err)

	bare := start(*bareBin, "listening at ")
	defer bare.stop()

	// (a) Cold start.
	data, err := os.MkdirTemp("", "moatbench")
	check(err)
	defer os.RemoveAll(data)
	node := start(*moatBin, "moat serving at ", "serve", "--data", data, "--listen", "127.0.0.1:0", "--console-listen", "off", "--log-level", "warn")
	node.data = data
	c := node.client(data)
	t0 := time.Now()
	v, err := c.Deploy(ctx, hello)
	check(err)
	deployTook := time.Since(t0)
	firstOK(c, "hello")
	deployToFirst := time.Since(t0)
	_, err = c.Deploy(ctx, minimal)
	check(err)
	fmt.Printf("## Cold start\n\n")
	fmt.Printf("| measure | value |\n|---|---|\n")
	fmt.Printf("| deploy of hello (%.1f MB Go module), compile included | %s |\n", float64(v.ModuleSize)/1e6, ms(deployTook))
	fmt.Printf("| deploy to first successful response | %s |\n", ms(deployToFirst))

	// A restart: from starting the process to the first successful
	// response, with the caches under the data directory kept or deleted.
	var cached, uncached []time.Duration
	for i := 0; i < 3; i++ {
		for _, keep := range []bool{true, false} {
			node.stop()
			if !keep {
				check(os.RemoveAll(filepath.Join(data, "cache")))
			}
			t := time.Now()
			node = start(*moatBin, "moat serving at ", "serve", "--data", data, "--listen", "127.0.0.1:0", "--console-listen", "off", "--log-level", "warn")
			node.data = data
			c = node.client(data)
			firstOK(c, "hello")
			if keep {
				cached = append(cached, time.Since(t))
			} else {
				uncached = append(uncached, time.Since(t))
			}
		}
	}
	fmt.Printf("| process start to first response after a restart, caches kept (median of 3) | %s |\n", ms(median(cached)))
	fmt.Printf("| process start to first response after a restart, caches deleted (median of 3) | %s |\n\n", ms(median(uncached)))

	// (b) Warm latency, one request at a time.
	fmt.Printf("## Warm latency, sequential requests over loopback HTTP (n=%d)\n\n", *seq)
	fmt.Printf("| target | p50 | p99 |\n|---|---|---|\n")
	for _, tgt := range []struct{ name, url string }{
		{"bare Go net/http, hello handler", bare.url + "/hello?name=bench"},
		{"moat /fn/hello (Go, fresh instance)", node.url + "/fn/hello?name=bench"},
		{"bare Go net/http, minimal handler", bare.url + "/minimal"},
		{"moat /fn/minimal (WAT, fresh instance)", node.url + "/fn/minimal"},
	} {
		lat := latencies(tgt.url, *seq)
		fmt.Printf("| %s | %s | %s |\n", tgt.name, us(pct(lat, 50)), us(pct(lat, 99)))
	}

	// (c), (d) Throughput and server CPU per request at concurrency c.
	targets := []loadTarget{
		{"bare Go, hello", bare, "/hello?name=bench", false},
		{"moat, hello (Go)", node, "/fn/hello?name=bench", false},
		{"bare Go, minimal", bare, "/minimal", false},
		{"moat, minimal (WAT)", node, "/fn/minimal", false},
	}
	rps, cpu := loadRounds(targets, *conc, *rounds, *duration)
	fmt.Printf("\n## Throughput at concurrency %d, median of %d rounds of %s\n\n", *conc, *rounds, *duration)
	fmt.Printf("| target | requests/s | server CPU per request | throughput ratio to bare | CPU ratio to bare |\n|---|---|---|---|---|\n")
	for i, tgt := range targets {
		b := i - i%2
		fmt.Printf("| %s | %.0f | %.1f µs | %.3f | %.2fx |\n", tgt.name, medianF(rps[i]), medianF(cpu[i])*1e6, medianF(rps[i])/medianF(rps[b]), medianF(cpu[i])/medianF(cpu[b]))
	}

	// Fresh sandboxes (docs/snapshots.md): a Go reactor with JSON in and
	// out, against the same handler natively and in workerd.
	wd := workerdIfAny()
	if wd != nil {
		defer wd.stop()
	}
	freshSandboxes(ctx, c, node, bare, wd, *conc, *rounds, *duration, *seq)
	javaScript(ctx, c, node, bare, wd, *conc, *rounds, *duration, *seq)

	// Auditing: the same node software with invocations unaudited, in the
	// same run.
	data2, err := os.MkdirTemp("", "moatbench")
	check(err)
	defer os.RemoveAll(data2)
	plain := start(*moatBin, "moat serving at ", "serve", "--data", data2, "--listen", "127.0.0.1:0", "--console-listen", "off", "--log-level", "error", "--unaudited-invocations")
	plain.data = data2
	for _, b := range []*bundle.Bundle{hello, minimal} {
		_, err := plain.client(data2).Deploy(ctx, b)
		check(err)
	}
	firstOK(plain.client(data2), "hello")
	var audited, unaudited [2][]float64
	for r := 0; r < *rounds; r++ {
		for i, path := range []string{"/fn/hello?name=bench", "/fn/minimal"} {
			for _, p := range []struct {
				srv *proc
				out *[]float64
			}{{node, &audited[i]}, {plain, &unaudited[i]}} {
				load(p.srv.url+path, *conc, time.Second)
				n, _, took := load(p.srv.url+path, *conc, *duration)
				*p.out = append(*p.out, float64(n)/took.Seconds())
			}
		}
	}
	plain.stop()
	fmt.Printf("\n## Auditing: throughput with every invocation audited, against the same node unaudited, concurrency %d, median of %d rounds\n\n", *conc, *rounds)
	fmt.Printf("| function | audited requests/s | unaudited requests/s | ratio |\n|---|---|---|---|\n")
	for i, name := range []string{"hello (Go)", "minimal (WAT)"} {
		a, u := medianF(audited[i]), medianF(unaudited[i])
		fmt.Printf("| %s | %.0f | %.0f | %.3f |\n", name, a, u, a/u)
	}

	floodSection(ctx, node, bare, minimal)
	node.stop()
}

// floodSection deploys /fn/limited (the minimal guest at 50/s) on node
// and runs the flood table against it.
func floodSection(ctx context.Context, node, bare *proc, minimal *bundle.Bundle) {
	_, err := node.client(node.data).Deploy(ctx, &bundle.Bundle{
		Source: []byte(strings.Replace(strings.Replace(string(minimal.Source), "name: minimal", "name: limited", 1),
			"concurrency: 64", "concurrency: 64, rate: 50/s", 1)),
		Files: minimal.Files,
	})
	check(err)
	atRest := startProbe(node.url+"/fn/minimal", 2000).finish()
	fmt.Printf("\n## Flood: 10,000 requests at a function limited to 50/s (minimal guest)\n\n")
	fmt.Printf("The unflooded function is /fn/minimal, timed one request at a time (1 ms apart, by a process of its own) while the flood runs; ")
	fmt.Printf("at rest its p50 is %s and its p99 %s (n=2000). The load generator shares the node's 2 cores. ", us(pct(atRest, 50)), us(pct(atRest, 99)))
	fmt.Printf("A flood as fast as possible lasts about half a second: its row pools the probe's timings over 3 floods, and gives the admitted count of the one furthest from the limit.\n\n")
	fmt.Printf("| flood | lasted | admitted / limit over that time (50 + 50/s, whole tokens) | refused (429) | unflooded p50 / p99 | p99 ratio to rest |\n|---|---|---|---|---|---|\n")
	for _, f := range []floodSpec{
		{clients: 32}, {clients: 32, nice: 19}, {clients: 4, nice: 19}, {clients: 32, nice: 19, bare: true},
		{clients: 32, pace: 5000}, {clients: 32, pace: 2000},
	} {
		flood(node, bare, f, atRest)
	}
}

// floodOnly runs the flood section alone, rounds times, on a fresh node
// with the minimal example deployed.
func floodOnly(ctx context.Context, moatBin, bareBin string, rounds int) {
	minimal, err := bundle.Read("examples/minimal")
	check(err)
	data, err := os.MkdirTemp("", "moatbench")
	check(err)
	defer os.RemoveAll(data)
	bare := start(bareBin, "listening at ")
	defer bare.stop()
	node := start(moatBin, "moat serving at ", "serve", "--data", data, "--listen", "127.0.0.1:0", "--console-listen", "off", "--log-level", "warn")
	node.data = data
	defer node.stop()
	_, err = node.client(data).Deploy(ctx, minimal)
	check(err)
	firstOK(node.client(data), "minimal")
	for range rounds {
		floodSection(ctx, node, bare, minimal)
	}
}

// floodSpec is one row of the flood table.
type floodSpec struct {
	pace    int  // requests a second in all; 0: as fast as the clients can
	clients int  // concurrent clients, each on a connection of its own
	nice    int  // > 0: the clients run in a process of their own at this nice value
	bare    bool // the flood goes to the bare server, not the node: the machine's share of the slowdown
}

// flood sends 10,000 requests to /fn/limited (or the bare server's
// /minimal) as f says, and meanwhile times sequential requests to
// /fn/minimal. With nice > 0 the clients take only the CPU the node and
// the probe leave, as an attacker's own machine would.
func flood(node, bare *proc, f floodSpec, atRest []time.Duration) {
	target := node.url + "/fn/limited"
	if f.bare {
		target = bare.url + "/minimal"
	}
	reps := 1
	if f.pace == 0 {
		reps = 3
	}
	var under []time.Duration
	var took time.Duration
	var admitted, refused int64
	worst := -1.0
	for range reps {
		probe := startProbe(node.url+"/fn/minimal", 0)
		var a, r int64
		var t time.Duration
		if f.nice == 0 {
			a, r, t = sendFlood(target, f.pace, f.clients)
		} else {
			self, err := os.Executable()
			check(err)
			out, err := exec.Command("nice", "-n", strconv.Itoa(f.nice), self, "-flood", target,
				"-flood-pace", strconv.Itoa(f.pace), "-flood-clients", strconv.Itoa(f.clients)).Output()
			check(err)
			var ns int64
			_, err = fmt.Sscan(string(out), &a, &r, &ns)
			check(err)
			t = time.Duration(ns)
		}
		under = append(under, probe.finish()...)
		// Tokens that refill after the last request was sent are never
		// asked for: the limit runs to the last send. Tokens are spent
		// whole, so a fraction of one is not admitted.
		limit := math.Floor(50 + 50*t.Seconds())
		if off := math.Abs(float64(a) - limit); off > worst {
			worst, admitted, refused, took = off, a, r, t
		}
		time.Sleep(1500 * time.Millisecond) // let the bucket refill between floods
	}
	limit := math.Floor(50 + 50*took.Seconds())
	name := "as fast as possible"
	if f.pace > 0 {
		name = fmt.Sprintf("paced at %d/s", f.pace)
	}
	name += fmt.Sprintf(", %d clients", f.clients)
	if f.nice > 0 {
		name += fmt.Sprintf(" (load generator at nice %d)", f.nice)
	}
	admittedCol := fmt.Sprintf("%d / %.0f (%+.2f%%)", admitted, limit, 100*(float64(admitted)-limit)/limit)
	refusedCol := strconv.FormatInt(refused, 10)
	if f.bare {
		name += ", at the bare server, not the node"
		admittedCol, refusedCol = "(not limited)", "-"
	}
	fmt.Printf("| %s | %s | %s | %s | %s / %s (n=%d) | %.2f |\n", name, ms(took), admittedCol, refusedCol,
		us(pct(under, 50)), us(pct(under, 99)), len(under), float64(pct(under, 99))/float64(pct(atRest, 99)))
}

// sendFlood sends 10,000 requests to url from clients clients, paced to
// pace a second in all (0: as fast as they can), and counts the answers.
// last is when the last request was sent.
func sendFlood(url string, pace, clients int) (admitted, refused int64, last time.Duration) {
	const total = 10000
	var sent, nOK, nRefused, lastSent atomic.Int64
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(time.Second / time.Duration(pace))
		defer t.Stop()
		tick = t.C
	}
	// Each client opens its connection first (a request for /healthz, which
	// spends no token), so that the clock starts when the flood's requests
	// do: the limit is reckoned from the first request's arrival.
	var open, ready sync.WaitGroup
	open.Add(clients)
	ready.Add(1)
	warm := strings.Split(url, "/fn/")[0] + "/healthz"
	var start time.Time
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			if resp, err := transport.RoundTrip(mustReq(warm)); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			open.Done()
			ready.Wait()
			for sent.Add(1) <= total {
				if tick != nil {
					<-tick
				}
				for at := int64(time.Since(start)); ; {
					if old := lastSent.Load(); at <= old || lastSent.CompareAndSwap(old, at) {
						break
					}
				}
				resp, err := transport.RoundTrip(mustReq(url))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					nOK.Add(1)
				case 429:
					nRefused.Add(1)
				}
			}
		})
	}
	open.Wait()
	start = time.Now()
	ready.Done()
	wg.Wait()
	return nOK.Load(), nRefused.Load(), time.Duration(lastSent.Load())
}

// proc is a server process started by the benchmark.
type proc struct {
	cmd  *exec.Cmd
	url  string
	data string
}

func start(bin, readyPrefix string, args ...string) *proc {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), readyPrefix); ok {
			go io.Copy(io.Discard, out)
			return &proc{cmd: cmd, url: u}
		}
	}
	log.Fatalf("%s did not start", bin)
	return nil
}

// workerdIfAny starts workerd (startWorkerd), or says why not and
// returns nil: the sections compare with it when it can run here.
func workerdIfAny() *proc {
	wd, err := startWorkerd()
	if err != nil {
		log.Printf("workerd not measured: %v", err)
		return nil
	}
	return wd
}

// startWorkerd starts Cloudflare's workerd serving bench/workerd/worker.js,
// the JSON handler, on a free loopback port, after installing the pinned
// workerd with bench/workerd/install if need be. It prints nothing when
// ready, so it is ready when a POST /json first answers as it should. The
// process is workerd's own binary, not a shell or Node wrapper, so that
// proc.cpu reads workerd's CPU time. workerd serves all requests on one
// event-loop thread (plus one V8 helper thread on 2 cores) and has no flag to
// use more: one process, as with the Go servers.
func startWorkerd() (*proc, error) {
	out, err := exec.Command("bench/workerd/install").Output()
	if err != nil {
		if e, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("bench/workerd/install: %v: %s", err, bytes.TrimSpace(e.Stderr))
		}
		return nil, fmt.Errorf("bench/workerd/install: %v", err)
	}
	bin := strings.TrimSpace(string(out))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "bench/workerd/config.capnp", "--socket-addr", "http="+addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, url: "http://" + addr}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if postJSONOnce(p.url+"/json") == nil {
			return p, nil
		}
		// A zombie: workerd exited, a bad config or a port taken since.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err == nil {
			if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				break
			}
		}
	}
	cmd.Process.Kill()
	err = cmd.Wait()
	return nil, fmt.Errorf("workerd at %s did not answer POST /json within 20 s (%v)", addr, err)
}

// jsonBody is the request of the JSON handler, and jsonWant a part of the
// answer that only a correct one has.
const (
	jsonBody = `{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`
	jsonWant = `"sum":55.5`
)

// postJSONOnce POSTs jsonBody to url, and fails unless the answer is 200
// with jsonWant in its body.
func postJSONOnce(url string) error {
	req, err := http.NewRequest("POST", url, strings.NewReader(jsonBody))
	check(err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if !bytes.Contains(body, []byte(jsonWant)) {
		return fmt.Errorf("answer %q lacks %s", body, jsonWant)
	}
	return nil
}

// postJSON is load for the JSON handler: c clients POST jsonBody to url for
// d, and only right answers count as ok.
func postJSON(url string, c int, d time.Duration) (ok, errs int64, took time.Duration) {
	var nOK, nErr atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if postJSONOnce(url) == nil {
					nOK.Add(1)
				} else {
					nErr.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nOK.Load(), nErr.Load(), time.Since(start)
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

func (p *proc) client(data string) *client.Client {
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	check(err)
	c, err := client.New(p.url, strings.TrimSpace(string(tok)), "")
	check(err)
	return c
}

// cpu is the process's user and system CPU time so far, from /proc.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	check(err)
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func firstOK(c *client.Client, fn string) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		resp, _, err := c.Invoke(context.Background(), "GET", fn, "", nil, nil)
		if err == nil && resp.StatusCode == 200 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	log.Fatalf("%s never answered 200", fn)
}

var transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}

func get(url string) error {
	resp, err := transport.RoundTrip(mustReq(url))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func mustReq(url string) *http.Request {
	req, err := http.NewRequest("GET", url, nil)
	check(err)
	return req
}

func latencies(url string, n int) []time.Duration {
	for i := 0; i < 50; i++ {
		get(url)
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		check(get(url))
		out = append(out, time.Since(t))
	}
	return out
}

// load runs c clients against url for d and counts successful requests.
func load(url string, c int, d time.Duration) (ok, errs int64, took time.Duration) {
	var nOK, nErr atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if get(url) == nil {
					nOK.Add(1)
				} else {
					nErr.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nOK.Load(), nErr.Load(), time.Since(start)
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func medianF(f []float64) float64 {
	s := slices.Clone(f)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1000) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// freshSandboxes deploys examples/sum and measures it beside bare Go and
// workerd serving the same JSON handler.
func freshSandboxes(ctx context.Context, c *client.Client, node, bare, wd *proc, conc, nRounds int, duration time.Duration, seq int) {
	if _, err := bundle.Build(ctx, "examples/sum"); err != nil {
		log.Fatal(err)
	}
	sum, err := bundle.Read("examples/sum")
	check(err)
	_, err = c.Deploy(ctx, sum)
	check(err)
	check(postJSONOnce(node.url + "/fn/sum"))
	fmt.Printf("\n## Fresh sandboxes: a Go function, JSON in and out (examples/sum, a reactor served from its snapshot)\n\n")
	fmt.Printf("Sequential POST requests over loopback HTTP (n=%d):\n\n| target | p50 | p99 |\n|---|---|---|\n", seq)
	bareLat := latenciesPOST(bare.url+"/json", seq)
	moatLat := latenciesPOST(node.url+"/fn/sum", seq)
	fmt.Printf("| bare Go net/http, /json | %s | %s |\n", us(pct(bareLat, 50)), us(pct(bareLat, 99)))
	fmt.Printf("| moat /fn/sum (Go reactor, fresh state per request) | %s | %s |\n", us(pct(moatLat, 50)), us(pct(moatLat, 99)))
	if wd != nil {
		wdLat := latenciesPOST(wd.url+"/json", seq)
		fmt.Printf("| workerd, the same handler in JavaScript | %s | %s |\n", us(pct(wdLat, 50)), us(pct(wdLat, 99)))
	}
	fmt.Printf("\nInvoke overhead at p50 (moat p50 minus bare p50): %s\n\n", us(pct(moatLat, 50)-pct(bareLat, 50)))

	targets := []loadTarget{{"bare Go, /json", bare, "/json", true}, {"moat, /fn/sum (Go reactor)", node, "/fn/sum", true}}
	if wd != nil {
		targets = append(targets, loadTarget{"workerd, /json (JavaScript)", wd, "/json", true})
	}
	rps, cpu := loadRounds(targets, conc, nRounds, duration)
	fmt.Printf("Throughput at concurrency %d, median of %d rounds of %s (the load generator shares the 2 cores):\n\n", conc, nRounds, duration)
	fmt.Printf("| target | requests/s | server CPU per request | throughput ratio to bare | CPU ratio to bare |\n|---|---|---|---|---|\n")
	for i, tgt := range targets {
		fmt.Printf("| %s | %.0f | %.1f µs | %.3f | %.2fx |\n", tgt.name, medianF(rps[i]), medianF(cpu[i])*1e6,
			medianF(rps[i])/medianF(rps[0]), medianF(cpu[i])/medianF(cpu[0]))
	}
	if wd != nil {
		fmt.Printf("\nmoat /fn/sum against workerd: %.2fx its throughput, %.2fx its CPU per request.\n",
			medianF(rps[1])/medianF(rps[2]), medianF(cpu[1])/medianF(cpu[2]))
	}
	// Private memory per instance: the sandbox benchmark reads it from
	// /proc/self/pagemap as each instance ends.
	out, err := exec.Command("go", "test", "-run", "XXX", "-bench", "BenchmarkRunReactor$", "-benchtime", "2000x", "./internal/sandbox").CombinedOutput()
	if err != nil {
		log.Printf("private memory not measured: %v\n%s", err, out)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "BenchmarkRunReactor") {
			f := strings.Fields(line)
			for k := 1; k < len(f); k++ {
				if f[k] == "private-B/op" {
					fmt.Printf("\nPrivate memory per instance of the reactor guest (pages written, from pagemap; go test -bench BenchmarkRunReactor ./internal/sandbox): %s bytes (%.0f KiB); in-process run %s per request.\n", f[k-1], atof(f[k-1])/1024, f[2]+" "+f[3])
				}
			}
		}
	}
}

func atof(s string) float64 {
	var f float64
	fmt.Sscan(s, &f)
	return f
}

// latenciesPOST times n sequential POSTs of jsonBody to url.
func latenciesPOST(url string, n int) []time.Duration {
	for i := 0; i < 50; i++ {
		postJSONOnce(url)
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		check(postJSONOnce(url))
		out = append(out, time.Since(t))
	}
	return out
}

// probe is a process of its own timing sequential requests to one URL, so
// that what it measures is the node's latency, not the wait of its
// goroutine behind the load generator's 32 in the same process.
type probe struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bytes.Buffer
}

// startProbe starts this program again as a probe of url: n requests, or,
// with n 0, requests until finish.
func startProbe(url string, n int) *probe {
	self, err := os.Executable()
	check(err)
	cmd := exec.Command(self, "-probe", url, "-probe-n", strconv.Itoa(n))
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	stdin, err := cmd.StdinPipe()
	check(err)
	check(cmd.Start())
	return &probe{cmd: cmd, stdin: stdin, out: out}
}

// finish stops the probe (or waits for its n requests) and returns what it
// timed.
func (p *probe) finish() []time.Duration {
	p.stdin.Close()
	check(p.cmd.Wait())
	var out []time.Duration
	for _, line := range strings.Fields(p.out.String()) {
		ns, err := strconv.ParseInt(line, 10, 64)
		check(err)
		out = append(out, time.Duration(ns))
	}
	if len(out) == 0 {
		log.Fatal("the probe timed nothing")
	}
	return out
}

// runProbe is the probe process: after 50 requests to warm up, it times
// requests 1 ms apart, n of them or until stdin closes, and prints each in
// nanoseconds.
func runProbe(url string, n int) {
	for range 50 {
		get(url)
	}
	stop := make(chan struct{})
	if n == 0 {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			close(stop)
		}()
	}
	var took []time.Duration
	for i := 0; n == 0 || i < n; i++ {
		select {
		case <-stop:
			n = -1
		default:
		}
		if n < 0 {
			break
		}
		t := time.Now()
		check(get(url))
		took = append(took, time.Since(t))
		time.Sleep(time.Millisecond)
	}
	w := bufio.NewWriter(os.Stdout)
	for _, d := range took {
		fmt.Fprintln(w, int64(d))
	}
	check(w.Flush())
}

// loadTarget is one server and path that loadRounds loads.
type loadTarget struct {
	name string
	srv  *proc
	path string
	post bool // POST the JSON handler's body rather than GET
}

// loadRounds loads each target in turn, rounds times over (interleaved, as
// the machine is shared), and returns each one's requests a second and
// server CPU per request, one figure a round.
func loadRounds(targets []loadTarget, conc, n int, duration time.Duration) (rps, cpu [][]float64) {
	rps = make([][]float64, len(targets))
	cpu = make([][]float64, len(targets))
	for r := 0; r < n; r++ {
		for i, tgt := range targets {
			run := load
			if tgt.post {
				run = postJSON
			}
			run(tgt.srv.url+tgt.path, conc, time.Second) // warm up
			cpu0 := tgt.srv.cpu()
			ok, errs, took := run(tgt.srv.url+tgt.path, conc, duration)
			used := tgt.srv.cpu() - cpu0
			if errs > 0 {
				log.Printf("%s: %d errors", tgt.name, errs)
			}
			rps[i] = append(rps[i], float64(ok)/took.Seconds())
			cpu[i] = append(cpu[i], used.Seconds()/float64(max(ok, 1)))
		}
	}
	return rps, cpu
}

// jsManifest deploys bench/workerd/worker.js, the script workerd runs, as
// the JavaScript function js.
const jsManifest = `name: js
module: dist/index.js
owner: moatbench
limits: {memory: 64MiB, timeout: 5s, concurrency: 64, body: 64KiB}
http: {auth: public, methods: [GET, POST]}
`

// javaScript serves workerd's own script as a Moat JavaScript function
// (fresh state per request) and measures it beside workerd (one isolate,
// reused) and the Go reactor, over the same loopback HTTP.
func javaScript(ctx context.Context, c *client.Client, node, bare, wd *proc, conc, nRounds int, duration time.Duration, seq int) {
	dir, err := os.MkdirTemp("", "moatbench-js")
	check(err)
	defer os.RemoveAll(dir)
	src, err := os.ReadFile("bench/workerd/worker.js")
	check(err)
	check(os.WriteFile(filepath.Join(dir, "index.js"), src, 0o644))
	check(os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(jsManifest), 0o644))
	_, err = bundle.Build(ctx, dir)
	check(err)
	b, err := bundle.Read(dir)
	check(err)
	t0 := time.Now()
	_, err = c.Deploy(ctx, b)
	check(err)
	firstDeploy := time.Since(t0)
	check(postJSONOnce(node.url + "/fn/js/json"))
	check(get(node.url + "/fn/js/hello?name=bench"))
	// A second JavaScript function: the runtime is compiled already.
	check(os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(strings.Replace(jsManifest, "name: js\n", "name: js2\n", 1)), 0o644))
	b2, err := bundle.Read(dir)
	check(err)
	t0 = time.Now()
	_, err = c.Deploy(ctx, b2)
	check(err)
	secondDeploy := time.Since(t0)

	fmt.Printf("\n## JavaScript: workerd's script as a Moat function (fresh state per request) beside workerd (one isolate, reused)\n\n")
	fmt.Printf("The script is bench/workerd/worker.js in both; Moat bundles it and serves it from the JavaScript runtime's snapshot (docs/javascript.md). The first JavaScript deploy on this node, compiling the runtime: %s; a second JavaScript function: %s.\n\n", ms(firstDeploy), ms(secondDeploy))
	fmt.Printf("Sequential requests over loopback HTTP (n=%d):\n\n| target | p50 | p99 | p50 overhead over bare Go |\n|---|---|---|---|\n", seq)
	type row struct {
		name      string
		lat, base []time.Duration
	}
	bareHello := latencies(bare.url+"/hello?name=bench", seq)
	bareJSON := latenciesPOST(bare.url+"/json", seq)
	rows := []row{
		{"bare Go, GET /hello", bareHello, bareHello},
		{"moat, GET /fn/js/hello (JavaScript)", latencies(node.url+"/fn/js/hello?name=bench", seq), bareHello},
		{"moat, GET /fn/hello (Go command)", latencies(node.url+"/fn/hello?name=bench", seq), bareHello},
	}
	if wd != nil {
		rows = append(rows, row{"workerd, GET /hello", latencies(wd.url+"/hello?name=bench", seq), bareHello})
	}
	rows = append(rows,
		row{"bare Go, POST /json", bareJSON, bareJSON},
		row{"moat, POST /fn/js/json (JavaScript)", latenciesPOST(node.url+"/fn/js/json", seq), bareJSON},
		row{"moat, POST /fn/sum (Go reactor)", latenciesPOST(node.url+"/fn/sum", seq), bareJSON})
	if wd != nil {
		rows = append(rows, row{"workerd, POST /json", latenciesPOST(wd.url+"/json", seq), bareJSON})
	}
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s |\n", r.name, us(pct(r.lat, 50)), us(pct(r.lat, 99)), us(pct(r.lat, 50)-pct(r.base, 50)))
	}

	targets := []loadTarget{
		{"bare Go, GET /hello", bare, "/hello?name=bench", false},
		{"moat, GET /fn/js/hello (JavaScript)", node, "/fn/js/hello?name=bench", false},
		{"bare Go, POST /json", bare, "/json", true},
		{"moat, POST /fn/js/json (JavaScript)", node, "/fn/js/json", true},
		{"moat, POST /fn/sum (Go reactor)", node, "/fn/sum", true},
	}
	if wd != nil {
		targets = append(targets, loadTarget{"workerd, GET /hello", wd, "/hello?name=bench", false}, loadTarget{"workerd, POST /json", wd, "/json", true})
	}
	rps, cpu := loadRounds(targets, conc, nRounds, duration)
	fmt.Printf("\nThroughput at concurrency %d, median of %d rounds of %s (the load generator shares the 2 cores; workerd runs every request on one thread):\n\n", conc, nRounds, duration)
	fmt.Printf("| target | requests/s | server CPU per request | throughput ratio to bare Go | CPU ratio to bare Go |\n|---|---|---|---|---|\n")
	baseOf := func(tgt loadTarget) int {
		if tgt.post {
			return 2
		}
		return 0
	}
	for i, tgt := range targets {
		b := baseOf(tgt)
		fmt.Printf("| %s | %.0f | %.1f µs | %.3f | %.2fx |\n", tgt.name, medianF(rps[i]), medianF(cpu[i])*1e6,
			medianF(rps[i])/medianF(rps[b]), medianF(cpu[i])/medianF(cpu[b]))
	}
	if wd != nil {
		fmt.Printf("\nMoat's JavaScript against workerd on the same script: /hello %.3fx its throughput (%.2fx its CPU per request), /json %.3fx (%.2fx).\n",
			medianF(rps[1])/medianF(rps[5]), medianF(cpu[1])/medianF(cpu[5]), medianF(rps[3])/medianF(rps[6]), medianF(cpu[3])/medianF(cpu[6]))
	}
}

// jsOnly runs the JavaScript section alone, on a fresh node with the Go
// functions it is compared with.
func jsOnly(ctx context.Context, moatBin, bareBin string, conc, rounds int, duration time.Duration, seq int) {
	bare := start(bareBin, "listening at ")
	defer bare.stop()
	data, err := os.MkdirTemp("", "moatbench")
	check(err)
	defer os.RemoveAll(data)
	node := start(moatBin, "moat serving at ", "serve", "--data", data, "--listen", "127.0.0.1:0", "--console-listen", "off", "--log-level", "warn")
	node.data = data
	defer node.stop()
	c := node.client(data)
	for _, dir := range []string{"examples/hello", "examples/sum"} {
		_, err := bundle.Build(ctx, dir)
		check(err)
		b, err := bundle.Read(dir)
		check(err)
		_, err = c.Deploy(ctx, b)
		check(err)
	}
	firstOK(c, "hello")
	check(postJSONOnce(node.url + "/fn/sum"))
	wd := workerdIfAny()
	if wd != nil {
		defer wd.stop()
	}
	javaScript(ctx, c, node, bare, wd, conc, rounds, duration, seq)
}
