package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/testwasm"
)

var moatBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moat-e2e")
	if err != nil {
		panic(err)
	}
	moatBin = filepath.Join(dir, "moat")
	if out, err := exec.Command("go", "build", "-o", moatBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build moat: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a `moat serve` process.
type server struct {
	cmd    *exec.Cmd
	url    string
	data   string
	output *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServer(t *testing.T, data string, args ...string) *server {
	t.Helper()
	return startProcess(t, data, exec.Command(moatBin, append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0"}, args...)...))
}

// startProcess starts cmd, a node that prints "moat serving at URL", and
// waits for that line.
func startProcess(t *testing.T, data string, cmd *exec.Cmd) *server {
	t.Helper()
	// The machine's environment (the go tool needs it to build examples),
	// without anything that would point the node elsewhere.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOAT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, data: data, output: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = s.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.output.Write([]byte(line + "\n"))
			if u, ok := strings.CutPrefix(line, "moat serving at "); ok {
				urls <- u
			}
		}
	}()
	go func() { s.exited <- cmd.Wait() }()
	select {
	case s.url = <-urls:
	case err := <-s.exited:
		t.Fatalf("moat serve exited: %v\n%s", err, s.output)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("moat serve did not start\n%s", s.output)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exited
		if tok, err := os.ReadFile(filepath.Join(data, "admin.token")); err == nil && strings.Contains(s.output.String(), strings.TrimSpace(string(tok))) {
			t.Errorf("moat serve printed the admin token")
		}
	})
	return s
}

// moat runs a client command in process, as a user would from the shell.
func (s *server) moat(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"MOAT_URL": s.url, "MOAT_TOKEN_FILE": filepath.Join(s.data, "admin.token")}
	cmd := newRootCmd(&stdout, &stderr, func(k string) string { return env[k] })
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

func (s *server) mustMoat(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := s.moat(t, args...)
	if err != nil {
		t.Fatalf("moat %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestAuthorDeployInvoke(t *testing.T) {
	s := startServer(t, t.TempDir())
	work := t.TempDir()
	fn := filepath.Join(work, "greeter")
	// As a new user outside this repository: no module download, no
	// network, no workspace; the SDK comes from the moat binary.
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	if out := s.mustMoat(t, "new", fn); !strings.Contains(out, "a reactor") {
		t.Fatalf("new: %q", out)
	}
	s.mustMoat(t, "build", fn)
	if wasm, err := os.ReadFile(filepath.Join(fn, "greeter.wasm")); err != nil || !bytes.Contains(wasm, []byte("moat_handle")) {
		t.Fatalf("moat new did not make a reactor (%v)", err)
	}
	if out := s.mustMoat(t, "deploy", fn); !strings.Contains(out, "deployed greeter version") {
		t.Fatalf("deploy output: %q", out)
	}
	// The command kind, for those who want only the standard library.
	cgiFn := filepath.Join(work, "plain")
	s.mustMoat(t, "new", "--command", cgiFn)
	s.mustMoat(t, "deploy", "--build", cgiFn)
	if wasm, err := os.ReadFile(filepath.Join(cgiFn, "plain.wasm")); err != nil || bytes.Contains(wasm, []byte("moat_handle")) {
		t.Fatal("moat new --command did not make a command")
	}
	if out := s.mustMoat(t, "invoke", "plain", "--path", "/?name=cgi"); !strings.Contains(out, `"greeting":"hello, cgi"`) {
		t.Fatalf("invoke plain: %q", out)
	}
	s.mustMoat(t, "rm", "plain")
	if out := s.mustMoat(t, "invoke", "greeter", "--path", "/?name=moat"); !strings.Contains(out, `"greeting":"hello, moat"`) {
		t.Fatalf("invoke output: %q", out)
	}
	var fns []map[string]any
	if err := json.Unmarshal([]byte(s.mustMoat(t, "ls", "-o", "json")), &fns); err != nil || len(fns) != 1 || fns[0]["name"] != "greeter" {
		t.Fatalf("ls -o json: %v %v", fns, err)
	}
	if out := s.mustMoat(t, "ls"); !strings.Contains(out, "greeter") || !strings.Contains(out, "public") {
		t.Fatalf("ls: %q", out)
	}

	// Failures exit non-zero with a reason.
	if _, _, err := s.moat(t, "invoke", "nosuch"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("invoke nosuch: %v", err)
	}
	if _, _, err := s.moat(t, "deploy", filepath.Join(work, "absent")); err == nil {
		t.Fatal("deploy of a missing folder succeeded")
	}
	if _, _, err := s.moat(t, "rollback", "greeter", "ffffffffffffffff"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("rollback to an unknown version: %v", err)
	}
	s.mustMoat(t, "rm", "greeter")
	if _, _, err := s.moat(t, "invoke", "greeter"); err == nil {
		t.Fatal("removed function still invoked")
	}
	// A wrong token is refused.
	var stdout bytes.Buffer
	cmd := newRootCmd(&stdout, io.Discard, func(k string) string {
		return map[string]string{"MOAT_URL": s.url, "MOAT_TOKEN": "wrong"}[k]
	})
	cmd.SetArgs([]string{"ls"})
	if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("ls with a wrong token: %v", err)
	}
}

func TestLogsCommand(t *testing.T) {
	s := startServer(t, t.TempDir())
	dir := kitchenDir(t)
	s.mustMoat(t, "deploy", dir)
	resp, err := http.Get(s.url + "/fn/kitchen/log")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("invoke /log: %v %v", resp, err)
	}
	id := resp.Header.Get("Moat-Invocation-Id")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := s.mustMoat(t, "logs", "kitchen")
		if strings.Contains(out, id) && strings.Contains(out, "first line") && strings.Contains(out, "second line") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("moat logs never showed invocation %s:\n%s", id, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// --since and --until bound the entries; -n keeps the newest of them.
	time.Sleep(300 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(300 * time.Millisecond)
	resp, err = http.Get(s.url + "/fn/kitchen/log")
	if err != nil {
		t.Fatal(err)
	}
	later := resp.Header.Get("Moat-Invocation-Id")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out := s.mustMoat(t, "logs", "kitchen"); strings.Contains(out, later) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invocation %s never logged", later)
		}
	}
	if out := s.mustMoat(t, "logs", "kitchen", "--since", mid.Format(time.RFC3339Nano)); !strings.Contains(out, later) || strings.Contains(out, id) {
		t.Errorf("logs --since between the two:\n%s", out)
	}
	if out := s.mustMoat(t, "logs", "kitchen", "--until", mid.Format(time.RFC3339Nano)); strings.Contains(out, later) || !strings.Contains(out, id) {
		t.Errorf("logs --until between the two:\n%s", out)
	}
	if out := s.mustMoat(t, "logs", "kitchen", "--since", "1h", "-n", "1"); !strings.Contains(out, later) || strings.Contains(out, id) {
		t.Errorf("logs --since 1h -n 1 (the newest of the range):\n%s", out)
	}
	if out := s.mustMoat(t, "logs", "kitchen", "--since", "1h", "-n", "0"); !strings.Contains(out, later) || !strings.Contains(out, id) {
		t.Errorf("logs --since 1h -n 0 (all of the range):\n%s", out)
	}
	if out := s.mustMoat(t, "logs", "kitchen", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); strings.TrimSpace(out) != "" {
		t.Errorf("logs --since the future:\n%s", out)
	}
	if _, _, err := s.moat(t, "logs", "kitchen", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "since") {
		t.Errorf("logs --since yesterday: %v", err)
	}

	// --follow streams entries written after it started.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	env := map[string]string{"MOAT_URL": s.url, "MOAT_TOKEN_FILE": filepath.Join(s.data, "admin.token")}
	cmd := newRootCmd(pw, io.Discard, func(k string) string { return env[k] })
	cmd.SetArgs([]string{"logs", "kitchen", "-n", "0", "-f", "-o", "json"})
	go func() { cmd.ExecuteContext(ctx); pw.Close() }()
	time.Sleep(500 * time.Millisecond)
	resp, err = http.Get(s.url + "/fn/kitchen/log")
	if err != nil {
		t.Fatal(err)
	}
	id = resp.Header.Get("Moat-Invocation-Id")
	// -o json is JSON Lines: each line one whole entry.
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var e struct {
			InvocationID string   `json:"invocation_id"`
			Lines        []string `json:"lines"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("logs -o json line %q: %v", sc.Text(), err)
		}
		if e.InvocationID == id {
			cancel()
			go io.Copy(io.Discard, pr)
			return
		}
	}
	t.Fatalf("logs -f never showed %s", id)
}

func kitchenDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wasm, err := os.ReadFile(testwasm.Path(t, "kitchen"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "kitchen.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: kitchen\nmodule: kitchen.wasm\nlimits: {timeout: 5s}\nhttp: {auth: public}\n"), 0o644)
	return dir
}

// TestSIGKILLLosesNothingAcknowledged kills the node without warning right
// after deploys were acknowledged: all of them are there after a restart.
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	dir := kitchenDir(t)
	var versions []string
	for i := 0; i < 5; i++ {
		m := fmt.Sprintf("name: fn%d\nmodule: kitchen.wasm\nenv: {N: \"%d\"}\nhttp: {auth: public}\n", i, i)
		os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(m), 0o644)
		out := s.mustMoat(t, "deploy", dir, "-o", "json")
		var v struct{ ID string }
		json.Unmarshal([]byte(out), &v)
		versions = append(versions, v.ID)
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.exited <- nil // for the cleanup

	s = startServer(t, data)
	for i := 0; i < 5; i++ {
		resp, err := http.Get(fmt.Sprintf("%s/fn/fn%d/env", s.url, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf("N=%d\n", i)) {
			t.Fatalf("fn%d after SIGKILL: %d %s", i, resp.StatusCode, b)
		}
	}
}

// TestSIGTERMDrains sends SIGTERM while an invocation runs: it finishes, and
// the node exits cleanly.
func TestSIGTERMDrains(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.mustMoat(t, "deploy", kitchenDir(t))
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get(s.url + "/fn/kitchen/sleep?d=1500ms")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		done <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	time.Sleep(500 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGTERM)
	if got := <-done; got != "200 slept" {
		t.Fatalf("in-flight request = %q, want 200 slept", got)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("moat serve after SIGTERM: %v\n%s", err, s.output)
		}
		s.exited <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("moat serve did not exit after SIGTERM")
	}
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Fatal("node still serving after drain")
	}
}

// TestReadmeServe runs the README's first command: a node with the examples
// deployed, answering as the README says.
// TestReadmeServe runs the README's first command, the widget catalog
// demo, as a process: the examples answer, and the form's story goes
// through to a mail in the stand-in's inbox.
func TestReadmeServe(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/widgets/demo").CombinedOutput(); err != nil {
		t.Fatalf("build the demo: %v\n%s", err, out)
	}
	data := t.TempDir()
	s := startProcess(t, data, exec.Command(bin, "--data", data, "--listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0", "--mail-api", "127.0.0.1:0", "--inbox", "127.0.0.1:0", "--examples", "../../examples"))
	// The demo says where the inbox is just after the node says where it
	// serves: wait for that line a moment.
	inbox := ""
	for deadline := time.Now().Add(10 * time.Second); inbox == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, line := range strings.Split(s.output.String(), "\n") {
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "the inbox:"); ok {
				inbox, _, _ = strings.Cut(strings.TrimSpace(u), " ")
			}
		}
	}
	if inbox == "" {
		t.Fatalf("the demo did not say where the inbox is:\n%s", s.output)
	}
	if resp, err := http.Get(s.url + "/fn/page/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the form: %v %v", resp, err)
	}
	resp, err := http.Post(s.url+"/fn/contact", "application/json", strings.NewReader(`{"name":"Carole","email":"carole@example.com","preferences":[{"colour":"blue","size":"big"},{"colour":"green","size":"small"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("contact: %d %s\n%s", resp.StatusCode, b, s.output)
	}
	// send-catalog mails it after contact answered: the inbox has it soon.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(inbox + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "carole@example.com") && strings.Contains(string(b), "catalog.pdf") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inbox:\n%s\n%s", b, s.output)
		}
	}
	for path, want := range map[string]string{
		"/fn/hello?name=you": `{"greeting":"hello, you"}`,
		"/fn/minimal":        "hello",
		"/healthz":           "ok",
	} {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d %q, want %q", path, resp.StatusCode, b, want)
		}
	}
	if out := s.mustMoat(t, "invoke", "hello", "-d", `{"name":"Carole"}`); !strings.Contains(out, "hello, Carole") {
		t.Errorf("moat invoke hello -d: %q", out)
	}
	if !strings.Contains(s.output.String(), "try: curl "+s.url+"/fn/hello") {
		t.Errorf("serve did not say where to go:\n%s", s.output)
	}
}

func TestKeyCommands(t *testing.T) {
	s := startServer(t, t.TempDir())
	out := s.mustMoat(t, "key", "create", "--role", "invoker", "--functions", "a,b", "--expires", "30d", "--note", "ci", "-o", "json")
	var created struct {
		ID, Token, Role string
		Functions       []string
		Expires         *time.Time
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" || !strings.HasPrefix(created.Token, "moat_") ||
		created.Role != "invoker" || len(created.Functions) != 2 || created.Expires == nil {
		t.Fatalf("key create -o json = %s (%v)", out, err)
	}
	ls := s.mustMoat(t, "key", "ls", "-o", "json")
	if strings.Contains(ls, created.Token) || strings.Contains(ls, "hash") || !strings.Contains(ls, created.ID) {
		t.Fatalf("key ls -o json = %s", ls)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(ls), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("key ls: %v %v", listed, err)
	}
	for _, f := range []string{"id", "role", "functions", "created", "expires"} {
		if _, ok := listed[0][f]; !ok {
			t.Errorf("key ls -o json lacks %q: %v", f, listed[0])
		}
	}
	s.mustMoat(t, "key", "revoke", created.ID)
	if _, _, err := s.moat(t, "key", "create", "--role", "root"); err == nil {
		t.Error("key create --role root succeeded")
	}
	if _, _, err := s.moat(t, "key", "revoke", created.ID); err == nil {
		t.Error("revoking a revoked key succeeded")
	}
}

func TestUsageCommand(t *testing.T) {
	s := startServer(t, t.TempDir(), "--deploy", "../../examples/minimal")
	for i := 0; i < 3; i++ {
		if resp, err := http.Get(s.url + "/fn/minimal"); err == nil {
			resp.Body.Close()
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := s.mustMoat(t, "usage", "--function", "minimal")
		if strings.Contains(out, "minimal") && strings.Contains(out, "estimated total") {
			var rows []map[string]any
			if err := json.Unmarshal([]byte(s.mustMoat(t, "usage", "-o", "json")), &rows); err != nil || len(rows) != 1 || rows[0]["invocations"] != float64(3) {
				t.Fatalf("usage -o json = %v %v", rows, err)
			}
			// The function named as everywhere else, and a time range.
			if out := s.mustMoat(t, "usage", "minimal", "--since", "2h"); !strings.Contains(out, "minimal") {
				t.Errorf("usage NAME:\n%s", out)
			}
			if out := s.mustMoat(t, "usage", "minimal", "--until", "2h", "-o", "json"); strings.TrimSpace(out) != "[]" {
				t.Errorf("usage --until 2h shows this hour: %s", out)
			}
			if _, _, err := s.moat(t, "usage", "minimal", "--until", "soon"); err == nil || !strings.Contains(err.Error(), "until") {
				t.Errorf("usage --until soon: %v", err)
			}
			if _, _, err := s.moat(t, "usage", "minimal", "--function", "other"); err == nil {
				t.Error("usage NAME --function OTHER accepted")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage never showed the invocations:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestAuditCommands(t *testing.T) {
	s := startServer(t, t.TempDir(), "--deploy", "../../examples/minimal")
	if resp, err := http.Get(s.url + "/fn/minimal"); err == nil {
		resp.Body.Close()
	}
	for _, args := range [][]string{{"audit", "--fn", "minimal"}, {"audit", "minimal"}} {
		out := s.mustMoat(t, args...)
		if !strings.Contains(out, "deploy") || !strings.Contains(out, "invoke") {
			t.Fatalf("moat %s:\n%s", strings.Join(args, " "), out)
		}
	}
	if out := s.mustMoat(t, "audit", "nosuchfn"); strings.Contains(out, "minimal") {
		t.Errorf("audit of another function shows minimal's records:\n%s", out)
	}
	if out := s.mustMoat(t, "audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("moat audit verify:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(s.mustMoat(t, "audit", "export", "--since", "1h")), "\n")
	var first, last struct{ Seq int }
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if len(lines) < 2 || first.Seq >= last.Seq {
		t.Fatalf("export is not oldest first JSON lines:\n%s", strings.Join(lines, "\n"))
	}
}

// TestAuditSurvivesSIGKILL: an acknowledged deploy's record survives a
// SIGKILL, and the chain verifies after it.
func TestAuditSurvivesSIGKILL(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	s.mustMoat(t, "deploy", kitchenDir(t))
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.exited <- nil
	s = startServer(t, data)
	out := s.mustMoat(t, "audit", "--action", "deploy", "-o", "json")
	var recs []struct{ Target, Outcome string }
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 1 || recs[0].Target != "kitchen" || recs[0].Outcome != "ok" {
		t.Fatalf("deploy record after SIGKILL: %s (%v)", out, err)
	}
	if out, _, err := s.moat(t, "audit", "verify"); err != nil {
		t.Fatalf("verify after SIGKILL: %v\n%s", err, out)
	}
}

// moatIn runs a client command with stdin.
func (s *server) moatIn(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"MOAT_URL": s.url, "MOAT_TOKEN_FILE": filepath.Join(s.data, "admin.token")}
	cmd := newRootCmd(&stdout, &stderr, func(k string) string { return env[k] })
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

func TestSecretAndKVCommands(t *testing.T) {
	s := startServer(t, t.TempDir())
	const value = "sk-e2e-5d1f0c9a"
	if _, _, err := s.moatIn(t, value+"\n", "secret", "set", "MAILER_KEY", "--functions", "form"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.moatIn(t, "", "secret", "set", "EMPTY"); err == nil {
		t.Error("secret set with nothing on stdin succeeded")
	}
	if _, _, err := s.moatIn(t, "x", "secret", "set", "lower-case"); err == nil {
		t.Error("secret set of a bad name succeeded")
	}
	for _, args := range [][]string{{"secret", "ls"}, {"secret", "ls", "-o", "json"}} {
		out := s.mustMoat(t, args...)
		if !strings.Contains(out, "MAILER_KEY") || strings.Contains(out, value) {
			t.Fatalf("moat %s:\n%s", strings.Join(args, " "), out)
		}
	}

	dir := t.TempDir()
	wasm, err := os.ReadFile("../../examples/minimal/minimal.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "minimal.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: form\nmodule: minimal.wasm\npermissions: {kv: {contacts: write}, secrets: [MAILER_KEY]}\n"), 0o644)
	s.mustMoat(t, "deploy", dir)
	if out := s.mustMoat(t, "kv", "ls"); !strings.Contains(out, "contacts") || !strings.Contains(out, "form:write") {
		t.Fatalf("kv ls:\n%s", out)
	}
	if out := s.mustMoat(t, "ls", "-o", "json"); !strings.Contains(out, `"grant": "kv:contacts:write"`) || !strings.Contains(out, `"last_used": null`) {
		t.Fatalf("ls -o json:\n%s", out)
	}
	if out := s.mustMoat(t, "secret", "rotate-master"); !strings.Contains(out, "master key rotated") {
		t.Fatalf("rotate-master: %s", out)
	}
	s.mustMoat(t, "secret", "rm", "MAILER_KEY")
	if out := s.mustMoat(t, "secret", "ls"); strings.Contains(out, "MAILER_KEY") {
		t.Fatalf("secret ls after rm:\n%s", out)
	}
	if strings.Contains(s.output.String(), value) {
		t.Fatal("the node's log holds the secret's value")
	}
	audit := s.mustMoat(t, "audit", "--action", "secret.set", "-o", "json")
	if !strings.Contains(audit, "MAILER_KEY") || strings.Contains(audit, value) {
		t.Fatalf("audit of secret.set:\n%s", audit)
	}
}

func TestSignedDeploys(t *testing.T) {
	keys := t.TempDir()
	var stdout, stderr bytes.Buffer
	for _, name := range []string{"release", "intruder"} {
		cmd := newRootCmd(&stdout, &stderr, func(string) string { return "" })
		cmd.SetArgs([]string{"keygen", filepath.Join(keys, name)})
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, t.TempDir(), "--require-signature", "--trusted-key", filepath.Join(keys, "release.pub"))
	dir := t.TempDir()
	wasm, err := os.ReadFile("../../examples/minimal/minimal.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "minimal.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: signed\nmodule: minimal.wasm\nhttp: {auth: public}\n"), 0o644)

	if _, errOut, err := s.moat(t, "deploy", dir); err == nil || !strings.Contains(errOut+err.Error(), "requires a signature") {
		t.Fatalf("unsigned deploy: %v %s", err, errOut)
	}
	s.mustMoat(t, "sign", dir, "--key", filepath.Join(keys, "intruder.key"))
	if _, errOut, err := s.moat(t, "deploy", dir); err == nil || !strings.Contains(errOut+err.Error(), "untrusted key") {
		t.Fatalf("deploy signed by an untrusted key: %v %s", err, errOut)
	}
	var signed struct{ Function, Signature, Key string }
	if err := json.Unmarshal([]byte(s.mustMoat(t, "sign", dir, "--key", filepath.Join(keys, "release.key"), "-o", "json")), &signed); err != nil ||
		signed.Function == "" || len(signed.Key) != 16 || !strings.HasSuffix(signed.Signature, "moat.sig") {
		t.Fatalf("sign -o json: %v %+v", err, signed)
	}
	if out := s.mustMoat(t, "deploy", dir); !strings.Contains(out, "signature checked: signed by "+signed.Key) {
		t.Fatalf("a signed deploy does not say whose signature was checked:\n%s", out)
	}
	if resp, err := http.Get(s.url + "/fn/signed"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke the signed function: %v %v", resp, err)
	}
	// Altered after signing: refused, naming the file.
	os.WriteFile(filepath.Join(dir, "minimal.wasm"), append(wasm, 0, 6, 4, 'e', 'v', 'i', 'l', 1), 0o644) // a custom section more
	if _, errOut, err := s.moat(t, "deploy", dir); err == nil || !strings.Contains(errOut+err.Error(), "minimal.wasm changed since it was signed") {
		t.Fatalf("deploy of an altered module: %v %s", err, errOut)
	}
	if out := s.mustMoat(t, "audit", "--action", "deploy", "-o", "json"); !strings.Contains(out, "changed since it was signed") {
		t.Fatalf("the refused deploy is not in the trail:\n%s", out)
	}
}

func TestSupplyChainCommands(t *testing.T) {
	osv := "../../internal/vulndb/testdata/osv"
	folder := func(guest string) string {
		dir := t.TempDir()
		wasm, err := os.ReadFile(testwasm.BuildDir(t, "../../internal/inventory/testdata/"+guest))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "fn.wasm"), wasm, 0o644)
		os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: langs\nmodule: fn.wasm\nhttp: {auth: public}\n"), 0o644)
		return dir
	}
	vulnerable, fixed := folder("vulnerable"), folder("fixed")
	s := startServer(t, t.TempDir())

	// Offline: no node involved.
	out, _, err := s.moat(t, "scan", vulnerable, "--db", osv+"/Go/all.zip")
	if err == nil || !strings.Contains(out, "GO-2021-0113") || !strings.Contains(err.Error(), "move to v0.3.7") {
		t.Fatalf("scan of a vulnerable folder: %v\n%s", err, out)
	}
	if out, _, err := s.moat(t, "scan", fixed, "--db", osv+"/Go"); err != nil || strings.Contains(out, "golang.org/x/text") {
		t.Fatalf("scan of the fixed folder: %v\n%s", err, out)
	}
	if _, _, err := s.moat(t, "scan", vulnerable, "--db", osv+"/Go/all.zip", "--block", "none"); err != nil {
		t.Fatalf("scan with --block none: %v", err)
	}

	// Without --db and nothing imported: a clear error, not a clean bill.
	if _, _, err := s.moat(t, "scan", vulnerable); err == nil || !strings.Contains(err.Error(), "no advisories imported") {
		t.Fatalf("scan against a node with no database: %v", err)
	}

	// The node: import a folder, deploy, list, SBOM.
	if out := s.mustMoat(t, "vulndb", "import", osv+"/Go"); !strings.Contains(out, "Go 43") {
		t.Fatalf("vulndb import:\n%s", out)
	}

	// Without --db: against the node's database, by an auditor, saying which.
	var auditor struct{ Token string }
	json.Unmarshal([]byte(s.mustMoat(t, "key", "create", "--role", "auditor", "-o", "json")), &auditor)
	out, _, err = s.moat(t, "scan", vulnerable, "--token", auditor.Token)
	if err == nil || !strings.Contains(out, "GO-2021-0113") || !strings.Contains(out, "database: the node's, imported "+time.Now().UTC().Format("2006-01-02")) ||
		!strings.Contains(out, "(43 advisories)") || !strings.Contains(err.Error(), "move to v0.3.7") {
		t.Fatalf("scan against the node: %v\n%s", err, out)
	}
	if out, _, err := s.moat(t, "scan", fixed, "--token", auditor.Token); err != nil || strings.Contains(out, "golang.org/x/text") {
		t.Fatalf("scan of the fixed folder against the node: %v\n%s", err, out)
	}
	if _, _, err := s.moat(t, "scan", vulnerable, "--token", auditor.Token, "--block", "none"); err != nil {
		t.Fatalf("scan against the node with --block none: %v", err)
	}
	var invoker struct{ Token string }
	json.Unmarshal([]byte(s.mustMoat(t, "key", "create", "--role", "invoker", "-o", "json")), &invoker)
	if _, _, err := s.moat(t, "scan", vulnerable, "--token", invoker.Token); err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(strings.ToLower(err.Error()), "forbidden") {
		t.Fatalf("scan by an invoker key: %v", err)
	}
	if out := s.mustMoat(t, "vulndb", "status"); !strings.Contains(out, "43 advisories") {
		t.Fatalf("vulndb status:\n%s", out)
	}
	if _, errOut, err := s.moat(t, "deploy", vulnerable); err == nil || !strings.Contains(errOut+err.Error(), "GO-2022-1059") {
		t.Fatalf("deploy of a vulnerable folder: %v %s", err, errOut)
	}
	s.mustMoat(t, "deploy", fixed)
	if out := s.mustMoat(t, "sbom", "langs"); !strings.Contains(out, `"bomFormat": "CycloneDX"`) || !strings.Contains(out, "golang.org/x/text") {
		t.Fatalf("sbom:\n%s", out)
	}
	s.mustMoat(t, "vuln", "allow", "CVE-2021-38561", "--function", "langs", "--until", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--reason", "alias works too")
	if out := s.mustMoat(t, "vuln", "exceptions"); !strings.Contains(out, "CVE-2021-38561") || !strings.Contains(out, "alias works too") {
		t.Fatalf("vuln exceptions:\n%s", out)
	}
	s.mustMoat(t, "vuln", "unallow", "CVE-2021-38561", "--function", "langs")
	if out := s.mustMoat(t, "vuln", "ls"); !strings.Contains(out, "FUNCTION") {
		t.Fatalf("vuln ls:\n%s", out)
	}
}

// TestVersionsAndInspect: no dead end between deploy and rollback. The
// versions a rollback needs are listed, inspect shows a function whole, and
// a module path given to deploy is read as its folder or refused saying why.
func TestVersionsAndInspect(t *testing.T) {
	s := startServer(t, t.TempDir())
	dir := t.TempDir()
	wasm, err := os.ReadFile("../../examples/minimal/minimal.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "minimal.wasm"), wasm, 0o644)
	manifest := "name: vers\nmodule: minimal.wasm\nhttp: {auth: public}\npermissions: {kv: {vers-data: read}}\n"
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(manifest), 0o644)

	// The module path deploys its folder.
	if out := s.mustMoat(t, "deploy", filepath.Join(dir, "minimal.wasm")); !strings.Contains(out, "deployed vers version") {
		t.Fatalf("deploy of the module path:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(manifest+"owner: team-a\n"), 0o644)
	s.mustMoat(t, "deploy", dir)
	if out := s.mustMoat(t, "deploy", dir); !strings.Contains(out, "no change: vers version") {
		t.Fatalf("a redeploy of identical content:\n%s", out)
	}

	var vs []struct {
		ID           string `json:"id"`
		Active       bool   `json:"active"`
		DeployedBy   string `json:"deployed_by"`
		ModuleSHA256 string `json:"module_sha256"`
	}
	if err := json.Unmarshal([]byte(s.mustMoat(t, "versions", "vers", "-o", "json")), &vs); err != nil || len(vs) != 2 {
		t.Fatalf("versions -o json: %v %+v", err, vs)
	}
	if vs[0].Active || !vs[1].Active || vs[0].ModuleSHA256 == "" || vs[0].ModuleSHA256 != vs[1].ModuleSHA256 || vs[0].DeployedBy != "admin" {
		t.Fatalf("versions: %+v", vs)
	}
	text := s.mustMoat(t, "versions", "vers")
	if lines := strings.Split(strings.TrimSpace(text), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], vs[1].ID) || !strings.Contains(lines[1], "*") || strings.Contains(lines[2], "*") {
		t.Fatalf("versions (newest first, the active one marked):\n%s", text)
	}
	// What versions lists is what rollback takes.
	s.mustMoat(t, "rollback", "vers", vs[0].ID)
	out := s.mustMoat(t, "inspect", "vers")
	for _, want := range []string{"vers: serving, version " + vs[0].ID, "kv:vers-data:read", "last used never", "findings:", "auth public"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	var in struct {
		Active   string            `json:"active"`
		Versions []json.RawMessage `json:"versions"`
		Grants   []json.RawMessage `json:"grants"`
		Findings []json.RawMessage `json:"findings"`
		Manifest map[string]any    `json:"manifest"`
	}
	raw := s.mustMoat(t, "inspect", "vers", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &in); err != nil || in.Active != vs[0].ID || len(in.Versions) != 2 || len(in.Grants) != 1 || in.Findings == nil || in.Manifest["name"] != "vers" {
		t.Fatalf("inspect -o json: %v\n%s", err, raw)
	}
	if _, _, err := s.moat(t, "inspect", "nonesuch"); err == nil {
		t.Error("inspect of no function succeeded")
	}
	if out := s.mustMoat(t, "deploy", dir); !strings.Contains(out, "re-activated vers version "+vs[1].ID) {
		t.Fatalf("a deploy of content deployed before:\n%s", out)
	}

	// A module whose folder's manifest names another module: refused, saying so.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "a.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(other, "b.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(other, "moat.yaml"), []byte("name: other\nmodule: b.wasm\n"), 0o644)
	if _, _, err := s.moat(t, "deploy", filepath.Join(other, "a.wasm")); err == nil || !strings.Contains(err.Error(), "names module b.wasm, not a.wasm") {
		t.Errorf("deploy of a module its manifest does not name: %v", err)
	}
	// rm of a function with several versions asks on a terminal.
	defer func(was func(io.Reader) bool) { isTerminal = was }(isTerminal)
	isTerminal = func(io.Reader) bool { return true }
	if _, errOut, err := s.moatIn(t, "n\n", "rm", "vers"); err == nil || !strings.Contains(errOut, "remove vers and its 2 versions") {
		t.Fatalf("rm answered no: %v %q", err, errOut)
	}
	s.mustMoat(t, "versions", "vers") // still there
	if out, _, err := s.moatIn(t, "y\n", "rm", "vers"); err != nil || !strings.Contains(out, "removed vers") {
		t.Fatalf("rm answered yes: %v %q", err, out)
	}
	s.mustMoat(t, "deploy", dir)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(manifest), 0o644)
	s.mustMoat(t, "deploy", dir)
	if out, errOut, err := s.moatIn(t, "", "rm", "vers", "--yes"); err != nil || !strings.Contains(out, "removed vers") || errOut != "" {
		t.Fatalf("rm --yes: %v %q %q", err, out, errOut)
	}

	lone := t.TempDir()
	os.WriteFile(filepath.Join(lone, "x.wasm"), wasm, 0o644)
	if _, _, err := s.moat(t, "deploy", filepath.Join(lone, "x.wasm")); err == nil || !strings.Contains(err.Error(), "is a WebAssembly module, not a manifest") {
		t.Errorf("deploy of a module with no manifest beside it: %v", err)
	}
}

// TestClientErrorsSayWhy: a node that does not answer and a missing token
// are explained, not left as a raw dial error or a bare 401.
func TestClientErrorsSayWhy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	run := func(env map[string]string, args ...string) error {
		var stdout, stderr bytes.Buffer
		cmd := newRootCmd(&stdout, &stderr, func(k string) string { return env[k] })
		cmd.SetArgs(args)
		return cmd.ExecuteContext(context.Background())
	}
	if err := run(map[string]string{"MOAT_URL": down, "MOAT_TOKEN": "x"}, "ls"); err == nil || !strings.Contains(err.Error(), "no Moat node answers at "+down+" (is `moat serve` running?") {
		t.Errorf("ls against no node: %v", err)
	}
	s := startServer(t, t.TempDir())
	t.Chdir(t.TempDir()) // no .moat/admin.token here
	err = run(map[string]string{"MOAT_URL": s.url}, "ls")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "no token was sent") || !strings.Contains(err.Error(), "$MOAT_TOKEN") {
		t.Errorf("ls with no token anywhere: %v", err)
	}
}

// TestServeDurations: serve's retention flags take the one duration grammar.
func TestServeDurations(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard, func(string) string { return "" })
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.ParseFlags([]string{"--audit-retention", "90d", "--usage-retention", "2w"}); err != nil {
		t.Fatal(err)
	}
	if a, u := serve.Flags().Lookup("audit-retention").Value.String(), serve.Flags().Lookup("usage-retention").Value.String(); a != "90d" || u != "14d" {
		t.Fatalf("retention flags read as %s and %s", a, u)
	}
	if err := serve.ParseFlags([]string{"--audit-retention", "90 days"}); err == nil || !strings.Contains(err.Error(), "like 90s, 15m, 12h, 30d or 2w") {
		t.Fatalf("a bad retention: %v", err)
	}
}

// TestKeyCreateWarnsOfUnknownFunctions: a key scoped to a function nobody
// deployed is created, with a warning on stderr (a typo, most likely).
func TestKeyCreateWarnsOfUnknownFunctions(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.mustMoat(t, "deploy", "../../examples/minimal")
	_, errOut, err := s.moatIn(t, "", "key", "create", "--role", "invoker", "--functions", "minimal,minmal")
	if err != nil || !strings.Contains(errOut, "no function minmal is deployed") || strings.Contains(errOut, "no function minimal ") {
		t.Fatalf("key create: %v %q", err, errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		root := newRootCmd(&out, io.Discard, func(string) string { return "" })
		root.SetArgs(args)
		if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "moat ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Errorf("moat %v: %v %q", args, err, out.String())
		}
	}
	var out bytes.Buffer
	root := newRootCmd(&out, io.Discard, func(string) string { return "" })
	root.SetArgs([]string{"version", "-o", "json"})
	var v struct{ Version, Go string }
	if err := root.Execute(); err != nil || json.Unmarshal(out.Bytes(), &v) != nil || v.Version == "" || v.Go != runtime.Version() {
		t.Errorf("moat version -o json: %v %q", err, out.String())
	}
}

// TestServeHasNoClientFlags: serve neither shows nor takes the flags of
// commands that talk to a node; those still show them.
func TestServeHasNoClientFlags(t *testing.T) {
	help := func(args ...string) string {
		var out bytes.Buffer
		root := newRootCmd(&out, &out, func(string) string { return "" })
		root.SetArgs(args)
		root.Execute()
		return out.String()
	}
	if h := help("serve", "--help"); strings.Contains(h, "--url") || strings.Contains(h, "--token") || strings.Contains(h, "--ca-file") || !strings.Contains(h, "--listen") {
		t.Errorf("serve --help:\n%s", h)
	}
	if h := help("ls", "--help"); !strings.Contains(h, "--url") || !strings.Contains(h, "--token") {
		t.Errorf("ls --help lost the client flags:\n%s", h)
	}
	root := newRootCmd(io.Discard, io.Discard, func(string) string { return "" })
	root.SetArgs([]string{"serve", "--token", "x", "--data", t.TempDir()})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--token is a client flag") {
		t.Errorf("serve --token: %v", err)
	}
}

// TestEmptyListsAreEmpty: on a fresh node every listing's JSON is [], not
// null.
func TestEmptyListsAreEmpty(t *testing.T) {
	s := startServer(t, t.TempDir())
	for _, args := range [][]string{{"ls"}, {"secret", "ls"}, {"key", "ls"}, {"vuln", "exceptions"}, {"vuln", "ls"}, {"kv", "ls"}} {
		out := s.mustMoat(t, append(args, "-o", "json")...)
		if strings.TrimSpace(out) != "[]" {
			t.Errorf("moat %s -o json on a fresh node: %q, want []", strings.Join(args, " "), out)
		}
	}
}

// TestEventCommands publishes events with moat publish and works a dead
// letter through moat dlq ls, show, replay and purge, as a user would.
func TestEventCommands(t *testing.T) {
	s := startServer(t, t.TempDir())
	dir := capsDir(t, `name: orders
module: fn.wasm
limits: {memory: 64MiB, timeout: 10s}
http: {auth: public}
permissions: {kv: {seen: read-write}}
triggers:
  - queue: {subject: "orders.>", max_deliver: 2, backoff: [1s]}
  - schedule: {cron: "0 7 * * mon-fri", timezone: Europe/Berlin}
`)
	s.mustMoat(t, "deploy", dir)

	if _, _, err := s.moat(t, "publish", "nobody.listens", "-d", "{}"); err == nil || !strings.Contains(err.Error(), "no listener") {
		t.Errorf("publish with no listener: %v", err)
	}
	if _, _, err := s.moat(t, "publish", "bad subject", "-d", "{}"); err == nil || !strings.Contains(err.Error(), "subject") {
		t.Errorf("publish to a bad subject: %v", err)
	}
	// A publisher key publishes on its subjects, and nothing else.
	var key struct{ Token string }
	json.Unmarshal([]byte(s.mustMoat(t, "key", "create", "--role", "publisher", "--subjects", "orders.paid,orders.x.*", "-o", "json")), &key)
	if out, _, err := s.moat(t, "publish", "orders.paid", "-d", `{"mode":"ok"}`, "--token", key.Token); err != nil || !strings.Contains(out, "published event") {
		t.Errorf("publish with a publisher key: %v %q", err, out)
	}
	if _, _, err := s.moat(t, "publish", "orders.created", "-d", `{}`, "--token", key.Token); err == nil || !strings.Contains(err.Error(), "may not publish") {
		t.Errorf("publish beyond the key's subjects: %v", err)
	}
	if _, _, err := s.moat(t, "key", "create", "--role", "publisher"); err == nil || !strings.Contains(err.Error(), "names the subjects") {
		t.Errorf("a publisher key without subjects: %v", err)
	}
	if out := s.mustMoat(t, "key", "ls"); !strings.Contains(out, "publisher  orders.paid,orders.x.*") {
		t.Errorf("key ls:\n%s", out)
	}
	out := s.mustMoat(t, "publish", "orders.created", "-d", `{"mode":"ok"}`, "--id", "e2e-ok", "--type", "com.example.order")
	if !strings.Contains(out, "published event e2e-ok on orders.created") {
		t.Errorf("publish: %q", out)
	}
	if out := s.mustMoat(t, "publish", "orders.created", "-d", `{"mode":"ok"}`, "--id", "e2e-ok"); !strings.Contains(out, "already published") {
		t.Errorf("publish of a duplicate: %q", out)
	}
	// A rejected event, its data from stdin with a control character in
	// it, becomes a dead letter at once.
	if _, errOut, err := s.moatIn(t, "{\"mode\":\"reject\"}\x1b[2J", "publish", "orders.refunded", "-d", "@-", "--id", "e2e-bad", "-o", "json"); err != nil || errOut != "" {
		t.Fatalf("publish -d @-: %v %q", err, errOut)
	}
	var ls struct {
		Total   int
		Letters []struct {
			ID       uint64
			Reason   string
			Status   int
			Attempts int
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for ls.Total == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		json.Unmarshal([]byte(s.mustMoat(t, "dlq", "ls", "orders", "-o", "json")), &ls)
	}
	if ls.Total != 1 || ls.Letters[0].Reason != "rejected" || ls.Letters[0].Status != 422 || ls.Letters[0].Attempts != 1 {
		t.Fatalf("dlq ls: %+v", ls)
	}
	id := fmt.Sprint(ls.Letters[0].ID)
	if out := s.mustMoat(t, "dlq", "ls", "orders"); !strings.Contains(out, "orders.refunded") || !strings.Contains(out, "422 Unprocessable Entity") || !strings.Contains(out, "e2e-bad") {
		t.Errorf("dlq ls:\n%s", out)
	}
	out = s.mustMoat(t, "dlq", "show", "orders", id)
	if !strings.Contains(out, "reason:     rejected (422") || !strings.Contains(out, `"mode":"reject"`) || strings.Contains(out, "\x1b") || !strings.Contains(out, `\x1b[2J`) {
		t.Errorf("dlq show:\n%q", out)
	}
	if _, _, err := s.moat(t, "dlq", "show", "orders", "999"); err == nil {
		t.Error("dlq show of a letter that is not there succeeded")
	}
	if _, _, err := s.moat(t, "dlq", "show", "orders", "x"); err == nil || !strings.Contains(err.Error(), "want the number") {
		t.Errorf("dlq show x: %v", err)
	}
	if _, _, err := s.moat(t, "dlq", "replay", "orders"); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Errorf("dlq replay with neither ids nor --all: %v", err)
	}

	// inspect and ls show the trigger and its dead letters.
	out = s.mustMoat(t, "inspect", "orders")
	if !strings.Contains(out, "triggers:") || !strings.Contains(out, "queue orders.>") || !strings.Contains(out, "1 dead letter") ||
		!strings.Contains(out, `schedule "0 7 * * mon-fri" Europe/Berlin (overlap forbid, max_deliver 5): next `) || !strings.Contains(out, "T07:00:00+01:00") {
		t.Errorf("inspect:\n%s", out)
	}
	var fns []struct {
		Name     string
		Triggers []struct {
			Subject     string
			DeadLetters int `json:"dead_letters"`
		}
	}
	json.Unmarshal([]byte(s.mustMoat(t, "ls", "-o", "json")), &fns)
	if len(fns) != 1 || len(fns[0].Triggers) != 2 || fns[0].Triggers[0].Subject != "orders.>" || fns[0].Triggers[0].DeadLetters != 1 {
		t.Errorf("ls -o json: %+v", fns)
	}

	// A replay is handled again (and rejected again: a new letter).
	if out := s.mustMoat(t, "dlq", "replay", "orders", id); !strings.Contains(out, "replayed event e2e-bad") {
		t.Errorf("dlq replay: %q", out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		json.Unmarshal([]byte(s.mustMoat(t, "dlq", "ls", "orders", "-o", "json")), &ls)
		if ls.Total == 1 && fmt.Sprint(ls.Letters[0].ID) != id {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ls.Total != 1 || fmt.Sprint(ls.Letters[0].ID) == id {
		t.Fatalf("after replay: %+v", ls)
	}
	// purge asks on a terminal.
	defer func(was func(io.Reader) bool) { isTerminal = was }(isTerminal)
	isTerminal = func(io.Reader) bool { return true }
	if _, errOut, err := s.moatIn(t, "n\n", "dlq", "purge", "orders"); err == nil || !strings.Contains(errOut, "delete every dead letter of orders") {
		t.Fatalf("purge answered no: %v %q", err, errOut)
	}
	if out, _, err := s.moatIn(t, "", "dlq", "purge", "orders", "--yes", "-o", "json"); err != nil || !strings.Contains(out, `"purged": 1`) {
		t.Fatalf("purge --yes: %v %q", err, out)
	}
	if out := s.mustMoat(t, "dlq", "ls", "orders"); !strings.Contains(out, "orders has no dead letters") {
		t.Errorf("dlq ls after purge: %q", out)
	}
}

// TestEventSurvivesSIGKILL kills the node while a function handles an
// event: after a restart the event is delivered again and handled, once
// more and no more, and nothing is dead-lettered.
func TestEventSurvivesSIGKILL(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--event-ack-wait", "3s")
	dir := capsDir(t, `name: orders
module: fn.wasm
limits: {memory: 64MiB, timeout: 10s}
http: {auth: public}
permissions: {kv: {seen: read-write}}
triggers:
  - queue: {subject: orders.created, max_deliver: 3}
`)
	s.mustMoat(t, "deploy", dir)
	// And an object trigger, killed under the same way.
	s.mustMoat(t, "deploy", capsDir(t, `name: ingest
module: fn.wasm
limits: {memory: 64MiB, timeout: 10s}
http: {auth: public}
env: {OBJECT_SLEEP: 3s}
permissions: {kv: {seen: read-write}, objects: {uploads: read}}
triggers:
  - object: {bucket: uploads, max_deliver: 3}
`))
	s.mustMoat(t, "publish", "orders.created", "-d", `{"mode":"sleep","ms":3000}`, "--id", "kill-me")
	if out, stderr, err := s.moatIn(t, "sku,qty\n", "object", "put", "uploads", "in/kill.csv"); err != nil {
		t.Fatalf("object put: %v %s %s", err, out, stderr)
	}
	deliveries := func(s *server) int { return seenCount(t, s, "kill-me") }
	objectDeliveries := func(s *server) int { return seenCount(t, s, "object:in/kill.csv") }
	waitFor := func(s *server, want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); deliveries(s) < want || objectDeliveries(s) < want; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("delivered %d and %d times, want %d\n%s", deliveries(s), objectDeliveries(s), want, s.output)
			}
		}
	}
	waitFor(s, 1) // both run: kill the node under them
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.exited <- nil

	s = startServer(t, data, "--event-ack-wait", "3s")
	waitFor(s, 2)
	var in struct {
		Triggers []struct {
			Pending     int `json:"pending"`
			InFlight    int `json:"in_flight"`
			DeadLetters int `json:"dead_letters"`
		} `json:"triggers"`
	}
	for _, fn := range []string{"orders", "ingest"} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			json.Unmarshal([]byte(s.mustMoat(t, "inspect", fn, "-o", "json")), &in)
			if len(in.Triggers) == 1 && in.Triggers[0].InFlight == 0 && in.Triggers[0].Pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the event was not acknowledged after its redelivery: %+v", fn, in.Triggers)
			}
		}
		if in.Triggers[0].DeadLetters != 0 {
			t.Errorf("%s: %d dead letters", fn, in.Triggers[0].DeadLetters)
		}
	}
	time.Sleep(4 * time.Second) // past another ack wait: no third delivery
	if n, m := deliveries(s), objectDeliveries(s); n != 2 || m != 2 {
		t.Errorf("delivered %d and %d times, want 2: once cut short, once to the end", n, m)
	}
}

// seenCount is how many times the caps guest deployed as orders recorded
// the event it keeps under key.
func seenCount(t *testing.T, s *server, key string) int {
	resp, err := http.Get(s.url + "/fn/orders/seen?id=" + url.QueryEscape(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Value string }
	json.NewDecoder(resp.Body).Decode(&r)
	var seen struct{ Count int }
	json.Unmarshal([]byte(r.Value), &seen)
	return seen.Count
}

// TestSecretAtATerminal runs `moat secret set` on a pseudo-terminal: the
// value is asked for twice, never echoed, and reaches a granted function;
// two different values set nothing.
func TestSecretAtATerminal(t *testing.T) {
	if f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err != nil {
		t.Skipf("no pseudo-terminals on this machine: %v", err)
	} else {
		f.Close()
	}
	s := startServer(t, t.TempDir())
	setAtTerminal := func(name string, typed ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(moatBin, "secret", "set", name, "--functions", "vault")
		cmd.Env = append(os.Environ(), "MOAT_URL="+s.url, "MOAT_TOKEN_FILE="+filepath.Join(s.data, "admin.token"))
		tty, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		var out syncBuffer
		copied := make(chan struct{})
		go func() { io.Copy(&out, tty); close(copied) }()
		prompts := []string{"(not shown): ", "to confirm: "}
		for i, v := range typed {
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), prompts[i]); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no prompt %q: %q", prompts[i], out.String())
				}
			}
			time.Sleep(100 * time.Millisecond) // the prompt comes just before echo goes off
			io.WriteString(tty, v+"\r")
		}
		err = cmd.Wait()
		tty.Close()
		<-copied
		return out.String(), err
	}
	const value = "sk-typed-7c1f2e9d"
	out, err := setAtTerminal("TYPED_KEY", value, value)
	if err != nil || !strings.Contains(out, "value of TYPED_KEY (not shown):") || !strings.Contains(out, "again, to confirm:") {
		t.Fatalf("secret set at a terminal: %v\n%q", err, out)
	}
	if strings.Contains(out, value) {
		t.Fatalf("the value was echoed: %q", out)
	}
	if out, err := setAtTerminal("OTHER_KEY", "one", "two"); err == nil || !strings.Contains(out, "the two values differ") {
		t.Fatalf("two different values: %v %q", err, out)
	}
	if list := s.mustMoat(t, "secret", "ls"); !strings.Contains(list, "TYPED_KEY") || strings.Contains(list, "OTHER_KEY") {
		t.Fatalf("secret ls:\n%s", list)
	}
	// The value typed is the value a granted function reads.
	dir := capsDir(t, "name: vault\nmodule: fn.wasm\nlimits: {memory: 64MiB}\nhttp: {auth: public}\npermissions: {secrets: [TYPED_KEY]}\n")
	s.mustMoat(t, "deploy", dir)
	resp, err := http.Get(s.url + "/fn/vault/secret?name=TYPED_KEY")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"value":"`+value+`"`) {
		t.Fatalf("the function reads %s", b)
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestCLIReference holds docs/cli.md to the commands: a flag or command
// added without regenerating the reference fails here.
func TestCLIReference(t *testing.T) {
	var b bytes.Buffer
	writeReference(&b, newRootCmd(io.Discard, io.Discard, func(string) string { return "" }))
	const file = "../../docs/cli.md"
	if *update {
		if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("docs/cli.md is not the reference the commands make: go test ./cmd/moat -run TestCLIReference -update")
	}
}

// TestGoldenOutput holds what the everyday commands print, text and JSON,
// to files under testdata/golden (go test ./cmd/moat -run TestGoldenOutput
// -update rewrites them), with what changes from run to run (times, ids,
// addresses) replaced by placeholders. Every JSON key is snake_case and
// every empty list is [].
func TestGoldenOutput(t *testing.T) {
	s := startServer(t, t.TempDir())
	dir := guestDir(t, "../../examples/minimal/minimal.wasm", "minimal.wasm",
		"name: minimal\nmodule: minimal.wasm\nowner: web-team\nlimits: {memory: 1MiB}\nhttp: {auth: public}\npermissions: {kv: {carts: read}}\n")
	var dep struct{ ID string }
	json.Unmarshal([]byte(s.mustMoat(t, "deploy", dir, "-o", "json")), &dep)
	var key struct{ ID string }
	json.Unmarshal([]byte(s.mustMoat(t, "key", "create", "--role", "invoker", "--functions", "minimal", "--note", "ci", "-o", "json")), &key)
	if out, errOut, err := s.moatIn(t, "v\n", "secret", "set", "API_KEY", "--functions", "minimal", "-o", "json"); err != nil || errOut != "" ||
		!strings.Contains(out, `"secret": "API_KEY"`) || !strings.Contains(out, `"functions": [`) || strings.Contains(out, `"v"`) {
		t.Errorf("secret set -o json: %v %q %q", err, out, errOut)
	}
	// Shell completion offers the node's functions where a NAME goes.
	for args, want := range map[string]bool{"inspect m": true, "logs ": true, "dlq ls ": true, "usage mi": true, "inspect x": false, "secret rm ": false} {
		out, _, err := s.moat(t, append([]string{"__complete"}, strings.Split(args, " ")...)...)
		if err != nil || strings.Contains(out, "minimal\n") != want {
			t.Errorf("completing %q: %v %q", args, err, out)
		}
	}
	// A Go function's deploy answer, its checks' components included.
	var kitchen any
	out, _, err := s.moat(t, "deploy", kitchenDir(t), "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &kitchen) != nil || !strings.Contains(out, `"components": [`) || !strings.Contains(out, `"ecosystem": "Go"`) {
		t.Fatalf("deploy -o json: %v\n%s", err, out)
	}
	for _, bad := range jsonFaults(kitchen, "") {
		t.Errorf("deploy -o json: %s", bad)
	}
	s.mustMoat(t, "rm", "kitchen", "--yes")
	placeholders := strings.NewReplacer(dep.ID, "<VERSION>", key.ID, "<KEY>", s.url, "<URL>")
	times := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	normalize := func(out string) string { return times.ReplaceAllString(placeholders.Replace(out), "<TIME>") }
	for _, args := range [][]string{
		{"ls"}, {"ls", "-o", "json"},
		{"versions", "minimal"}, {"versions", "minimal", "-o", "json"},
		{"inspect", "minimal"}, {"inspect", "minimal", "-o", "json"},
		{"key", "ls"}, {"key", "ls", "-o", "json"},
		{"secret", "ls"}, {"secret", "ls", "-o", "json"},
		{"kv", "ls"}, {"kv", "ls", "-o", "json"},
		{"dlq", "ls", "minimal"}, {"dlq", "ls", "minimal", "-o", "json"},
		{"vuln", "ls", "-o", "json"},
	} {
		out, errOut, err := s.moat(t, args...)
		if err != nil || errOut != "" {
			t.Errorf("moat %s: %v %q", strings.Join(args, " "), err, errOut)
			continue
		}
		if args[len(args)-1] == "json" {
			var v any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Errorf("moat %s: not JSON: %v", strings.Join(args, " "), err)
			}
			for _, bad := range jsonFaults(v, "") {
				t.Errorf("moat %s: %s", strings.Join(args, " "), bad)
			}
		}
		file := filepath.Join("testdata", "golden", strings.Join(args, "_")+".txt")
		got := normalize(out)
		if *update {
			os.MkdirAll(filepath.Dir(file), 0o755)
			os.WriteFile(file, []byte(got), 0o644)
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil || string(want) != got {
			t.Errorf("moat %s printed (want %s, -update to accept):\n%s", strings.Join(args, " "), file, got)
		}
	}
}

// jsonFaults lists the keys of v that are not snake_case and the lists
// that are null, skipping maps whose keys are data (files, env, headers,
// grants, counts).
func jsonFaults(v any, path string) []string {
	var out []string
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !snake.MatchString(k) {
				out = append(out, fmt.Sprintf("key %s%s is not snake_case", path, k))
			}
			switch k {
			case "files", "env", "headers", "extensions", "grants", "kv", "vulnerabilities", "refusals", "counts":
				continue
			}
			out = append(out, jsonFaults(e, path+k+".")...)
		}
	case []any:
		for _, e := range x {
			out = append(out, jsonFaults(e, path)...)
		}
	}
	return out
}

// TestDevLoop runs moat dev on a new function through an edit, a broken
// build and its fix: each good edit serves, the broken one leaves the last
// good version serving and says why.
func TestDevLoop(t *testing.T) {
	s := startServer(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "devfn")
	if _, _, err := s.moat(t, "new", dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	env := map[string]string{"MOAT_URL": s.url, "MOAT_TOKEN_FILE": filepath.Join(s.data, "admin.token")}
	cmd := newRootCmd(&stdout, &stderr, func(k string) string { return env[k] })
	cmd.SetArgs([]string{"dev", dir, "--interval", "100ms"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("moat dev: %v", err)
		}
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Minute); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s\nstdout:\n%s\nstderr:\n%s", what, stdout.String(), stderr.String())
			}
		}
	}
	get := func() string {
		resp, err := http.Get(s.url + "/fn/devfn")
		if err != nil {
			return ""
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	waitFor("the first deploy", func() bool { return strings.Contains(get(), "hello, world") })
	if !strings.Contains(stderr.String(), "building "+dir) || !strings.Contains(stderr.String(), "built in") || !strings.Contains(stdout.String(), "deployed devfn version") {
		t.Errorf("no progress shown:\n%s\n%s", stdout.String(), stderr.String())
	}
	main := filepath.Join(dir, "main.go")
	src, _ := os.ReadFile(main)
	os.WriteFile(main, bytes.Replace(src, []byte(`"hello, "`), []byte(`"bonjour, "`), 1), 0o644)
	waitFor("the edit to serve", func() bool { return strings.Contains(get(), "bonjour, world") })

	os.WriteFile(main, append(bytes.Replace(src, []byte(`"hello, "`), []byte(`"hi, "`), 1), []byte("\nfunc broken() { undefinedThing() }\n")...), 0o644)
	waitFor("the build error", func() bool { return strings.Contains(stderr.String(), "undefined: undefinedThing") })
	if !strings.Contains(get(), "bonjour, world") {
		t.Errorf("a broken build replaced the version serving: %s", get())
	}
	os.WriteFile(main, bytes.Replace(src, []byte(`"hello, "`), []byte(`"hi, "`), 1), 0o644)
	waitFor("the fix to serve", func() bool { return strings.Contains(get(), "hi, world") })
}

// TestJWKSReloadOnSIGHUP: the issuer adds a key; after SIGHUP the node
// takes tokens signed with it, without a restart.
func TestJWKSReloadOnSIGHUP(t *testing.T) {
	type signer struct {
		kid string
		key *ecdsa.PrivateKey
	}
	newSigner := func(kid string) signer {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return signer{kid, k}
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := func(ss ...signer) []byte {
		var keys []map[string]string
		for _, s := range ss {
			x, y := make([]byte, 32), make([]byte, 32)
			s.key.X.FillBytes(x)
			s.key.Y.FillBytes(y)
			keys = append(keys, map[string]string{"kty": "EC", "crv": "P-256", "kid": s.kid, "x": b64(x), "y": b64(y)})
		}
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	token := func(s signer) string {
		h, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": s.kid})
		c, _ := json.Marshal(map[string]any{"iss": "https://idp.example", "aud": "moat", "sub": "carole", "exp": time.Now().Add(time.Hour).Unix()})
		in := b64(h) + "." + b64(c)
		d := sha256.Sum256([]byte(in))
		r, ss, _ := ecdsa.Sign(rand.Reader, s.key, d[:])
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
		return in + "." + b64(sig)
	}
	a, b := newSigner("a"), newSigner("b")
	file := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(file, jwks(a), 0o644)
	s := startServer(t, t.TempDir(), "--jwt-jwks", file, "--jwt-issuer", "https://idp.example", "--jwt-audience", "moat")
	dir := kitchenDir(t)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: kitchen\nmodule: kitchen.wasm\nhttp: {auth: jwt}\n"), 0o644)
	s.mustMoat(t, "deploy", dir)
	call := func(tok string) int {
		req, _ := http.NewRequest("GET", s.url+"/fn/kitchen/env", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(token(a)); got != 200 {
		t.Fatalf("a token of key a: %d", got)
	}
	if got := call(token(b)); got != 401 {
		t.Fatalf("a token of key b before the reload: %d", got)
	}
	os.WriteFile(file, jwks(a, b), 0o644)
	s.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); call(token(b)) != 200; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("key b not taken after SIGHUP\n%s", s.output)
		}
	}
	if !strings.Contains(s.output.String(), "jwks reloaded") {
		t.Errorf("the reload was not logged:\n%s", s.output)
	}
}

// capsDir is a function folder holding the caps test guest as fn.wasm and
// manifest as its moat.yaml.
func capsDir(t *testing.T, manifest string) string {
	t.Helper()
	return guestDir(t, testwasm.Path(t, "caps"), "fn.wasm", manifest)
}

// guestDir is a function folder holding the module file wasm as module,
// and manifest as its moat.yaml.
func guestDir(t *testing.T, wasm, module, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, module), b, 0o644)
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(manifest), 0o644)
	return dir
}

// TestPostureCommand deploys functions built to fail the posture checks
// and one built to pass them, and reads moat posture as a user would.
func TestPostureCommand(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.mustMoat(t, "deploy", capsDir(t, `name: leaky
module: fn.wasm
http: {auth: public, methods: [POST]}
env: {AWS_KEY_ID: AKIAIOSFODNN7EXAMPLE}
permissions: {egress: ["http://mail.example.net/v3/"]}
`))
	s.mustMoat(t, "deploy", capsDir(t, "name: lonely\nmodule: fn.wasm\nowner: ops\nhttp: {auth: internal}\n"))
	dir := capsDir(t, `name: tidy
module: fn.wasm
owner: web-team
http: {auth: public, methods: [POST]}
input: {schema: s.json}
limits: {rate_per_caller: 2/s}
budget: {invocations: 1000/day}
`)
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"type":"object"}`), 0o644)
	s.mustMoat(t, "deploy", dir)

	var fs []struct{ Function, Check, Severity, Evidence, Fix string }
	out := s.mustMoat(t, "posture", "-o", "json")
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatal(err)
	}
	by := map[string][]string{}
	for i, f := range fs {
		by[f.Function] = append(by[f.Function], f.Check)
		if i > 0 && f.Severity == "high" && fs[i-1].Severity != "high" {
			t.Errorf("not most pressing first: %+v", fs)
		}
		if f.Evidence == "" || f.Fix == "" {
			t.Errorf("a finding without evidence or fix: %+v", f)
		}
	}
	for fn, want := range map[string][]string{
		"leaky":  {"egress-risky", "no-owner", "public-no-schema", "public-unbounded", "secret-in-env", "unsigned"},
		"lonely": {"unreachable", "unsigned"},
		"tidy":   {"unsigned"},
	} {
		got := by[fn]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", fn, got, want)
		}
	}
	if strings.Contains(out, "AKIAIOSFODNN7EXAMPLE") {
		t.Error("posture printed the secret-looking value")
	}
	if text := s.mustMoat(t, "posture", "leaky"); !strings.Contains(text, "HIGH") || !strings.Contains(text, "secret-in-env") || strings.Contains(text, "lonely") {
		t.Errorf("posture leaky:\n%s", text)
	}
	if _, _, err := s.moat(t, "posture", "nosuch"); err == nil {
		t.Error("posture of a function that is not there succeeded")
	}
}

// TestNodeChecksItself imports an advisory against a module the node is
// built with: moat version --node names it and the version to move to.
func TestNodeChecksItself(t *testing.T) {
	s := startServer(t, t.TempDir())
	if out := s.mustMoat(t, "version", "--node"); !strings.Contains(out, "no advisory database imported") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("before an import:\n%s", out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "MOAT-TEST-0001.json"), []byte(`{"schema_version":"1.6.0","id":"MOAT-TEST-0001","modified":"2026-12-01T00:00:00Z",
"summary":"a test advisory against the CLI library the node is built with",
"affected":[{"package":{"ecosystem":"Go","name":"github.com/spf13/cobra"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"99.0.0"}]}]}]}`), 0o644)
	s.mustMoat(t, "vulndb", "import", dir)
	var rep struct {
		Go, Version string
		Components  int
		Findings    []struct{ ID, Package, Fixed string }
	}
	if err := json.Unmarshal([]byte(s.mustMoat(t, "version", "--node", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Go != runtime.Version() || rep.Components < 5 || len(rep.Findings) != 1 || rep.Findings[0].ID != "MOAT-TEST-0001" ||
		rep.Findings[0].Package != "github.com/spf13/cobra" || rep.Findings[0].Fixed != "v99.0.0" {
		t.Fatalf("the node's report: %+v", rep)
	}
	if out := s.mustMoat(t, "version", "--node"); !strings.Contains(out, "1 advisory matches the node") || !strings.Contains(out, "MOAT-TEST-0001") {
		t.Errorf("version --node:\n%s", out)
	}
	if out := s.mustMoat(t, "posture"); !strings.Contains(out, "(node)") || !strings.Contains(out, "node-vulnerable") || !strings.Contains(out, "MOAT-TEST-0001") {
		t.Errorf("posture does not show the node's own advisory:\n%s", out)
	}
}

// TestReadData: -d takes text, @FILE and @- (stdin), each bounded.
func TestReadData(t *testing.T) {
	file := filepath.Join(t.TempDir(), "body")
	os.WriteFile(file, []byte("0123456789"), 0o644)
	cmd := &cobra.Command{}
	cmd.SetIn(strings.NewReader("from stdin"))
	for data, want := range map[string]string{"plain": "plain", "@" + file: "0123456789", "@-": "from stdin"} {
		if got, err := readData(cmd, data, 16); err != nil || string(got) != want {
			t.Errorf("readData(%q) = %q, %v", data, got, err)
		}
	}
	if _, err := readData(cmd, "@"+file, 9); err == nil {
		t.Error("a file over the limit was read")
	}
	if _, err := readData(cmd, "@"+file+".missing", 16); err == nil {
		t.Error("a missing file was read")
	}
}

// TestJavaScriptAuthoring: moat new --lang js, build (bundled in process,
// no Node.js), deploy, invoke; a syntax error names its line; a lock file
// the manifest does not name stops the build.
func TestJavaScriptAuthoring(t *testing.T) {
	data := t.TempDir()
	testwasm.ShareCompileCache(t, data)
	s := startServer(t, data)
	fn := filepath.Join(t.TempDir(), "greeter-js")
	if out := s.mustMoat(t, "new", "--lang", "js", fn); !strings.Contains(out, "JavaScript") {
		t.Fatalf("new: %q", out)
	}
	if out := s.mustMoat(t, "deploy", "--build", fn); !strings.Contains(out, "deployed greeter-js version") {
		t.Fatalf("deploy: %q", out)
	}
	if out := s.mustMoat(t, "invoke", "greeter-js", "--path", "/?name=js"); !strings.Contains(out, `"greeting":"hello, js"`) {
		t.Fatalf("invoke: %q", out)
	}
	if out := s.mustMoat(t, "sbom", "greeter-js"); !strings.Contains(out, "dop251/goja") {
		t.Fatalf("sbom: %.300q", out)
	}
	// The example, with its input schema at the door.
	s.mustMoat(t, "deploy", "--build", "../../examples/hello-js")
	if out := s.mustMoat(t, "invoke", "hello-js", "-d", `{"name":"Carole"}`, "-H", "Content-Type: application/json"); !strings.Contains(out, `"greeting":"hello, Carole"`) {
		t.Fatalf("hello-js: %q", out)
	}
	if _, _, err := s.moat(t, "invoke", "hello-js", "-d", `{"name":"Carole","cmd":"$(id)"}`, "-H", "Content-Type: application/json"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("hello-js with an unexpected field: %v", err)
	}

	index := filepath.Join(fn, "index.js")
	src, _ := os.ReadFile(index)
	os.WriteFile(index, []byte("export default {\n  fetch(request) {\n    return new Response(\"x\"\n  },\n};\n"), 0o644)
	if _, _, err := s.moat(t, "build", fn); err == nil || !strings.Contains(err.Error(), "index.js:4:") {
		t.Fatalf("a syntax error: %v", err)
	}
	os.WriteFile(index, src, 0o644)
	os.WriteFile(filepath.Join(fn, "package-lock.json"), []byte(`{"lockfileVersion": 3, "packages": {}}`), 0o644)
	if _, _, err := s.moat(t, "build", fn); err == nil || !strings.Contains(err.Error(), "lockfiles: [package-lock.json]") {
		t.Fatalf("an unnamed lock file: %v", err)
	}
}
