package egress

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func TestRefusal(t *testing.T) {
	tests := []struct {
		ip   string
		want string // "" means public; else a word in the reason
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"169.255.0.1", ""},
		{"2606:4700:4700::1111", ""},
		{"2a00:1450:4001::200e", ""},
		{"2001:4860:4860::8888", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8

		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"169.254.1.1", "link-local"},
		{"169.254.169.254", "metadata"},
		{"169.254.170.2", "metadata"},
		{"100.100.100.200", "metadata"},
		{"fd00:ec2::254", "metadata"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"0.0.0.0", "this-network"},
		{"0.1.2.3", "this-network"},
		{"255.255.255.255", "broadcast"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "IPv4-mapped form of a loopback"},
		{"::ffff:169.254.169.254", "IPv4-mapped form of a cloud metadata"},
		{"::ffff:10.0.0.1", "IPv4-mapped form of a private"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"::a00:1", "IPv4-compatible"},
		{"64:ff9b::7f00:1", "NAT64 form of a loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 form of a cloud metadata"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"2002:7f00:1::", "6to4"},
		{"2001::1", "Teredo"},
		{"2001:db8::1", "documentation"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "zone"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"100::1", "discard"},
		{"4000::1", "global unicast"},
	}
	for _, tt := range tests {
		got := refusal(netip.MustParseAddr(tt.ip))
		switch {
		case tt.want == "" && got != "":
			t.Errorf("refusal(%s) = %q, want public", tt.ip, got)
		case tt.want != "" && !strings.Contains(got, tt.want):
			t.Errorf("refusal(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
	if got := refusal(netip.Addr{}); got == "" {
		t.Error("refusal(zero Addr) = \"\", want a reason")
	}
}

// TestDialRefusesBeforeConnecting checks dial's decisions for addresses
// no test may connect to: each must be refused before any socket opens.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	tests := []struct {
		name   string
		addr   string   // what the Transport asks to dial
		lookup []string // what the resolver answers for a name
		grants []string // the call's prefixes
		want   string   // a word in the DeniedError's reason
	}{
		{"metadata literal", "169.254.169.254:80", nil, nil, "metadata"},
		{"metadata literal, grant for another port", "169.254.169.254:80", nil, []string{"http://169.254.169.254:8080/"}, "no grant names it"},
		{"private literal, grant for another address", "10.0.0.1:443", nil, []string{"https://10.0.0.2/"}, "no grant names it"},
		{"name to metadata", "rebind.test:443", []string{"169.254.169.254"}, []string{"https://rebind.test/"}, "resolves to 169.254.169.254"},
		{"name to a granted literal", "rebind.test:443", []string{"10.0.0.1"}, []string{"https://rebind.test/", "https://10.0.0.1/"}, "resolves to 10.0.0.1"},
		{"public and loopback", "rebind.test:443", []string{"8.8.8.8", "127.0.0.1"}, []string{"https://rebind.test/"}, "loopback"},
		{"mapped loopback", "rebind.test:443", []string{"::ffff:127.0.0.1"}, []string{"https://rebind.test/"}, "IPv4-mapped"},
		{"NAT64 metadata", "rebind.test:443", []string{"64:ff9b::a9fe:a9fe"}, []string{"https://rebind.test/"}, "NAT64"},
		{"ULA", "rebind.test:443", []string{"fd00::1"}, []string{"https://rebind.test/"}, "private"},
		{"port zero", "8.8.8.8:0", nil, nil, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{})
			c.lookup = func(context.Context, string) ([]netip.Addr, error) {
				var ips []netip.Addr
				for _, s := range tt.lookup {
					ips = append(ips, netip.MustParseAddr(s))
				}
				return ips, nil
			}
			connected := false
			c.dialer.ControlContext = func(context.Context, string, string, syscall.RawConn) error {
				connected = true
				return errors.New("test: no connection may be attempted")
			}
			var prefixes []Prefix
			for _, g := range tt.grants {
				prefixes = append(prefixes, mustPrefix(t, g))
			}
			ctx := context.WithValue(context.Background(), namedKey{}, namedBy(prefixes))
			conn, err := c.dial(ctx, "tcp", tt.addr)
			if conn != nil {
				conn.Close()
			}
			var d *DeniedError
			if !errors.As(err, &d) {
				t.Fatalf("dial(%s) error = %v, want a *DeniedError", tt.addr, err)
			}
			if !strings.Contains(d.Reason, tt.want) {
				t.Fatalf("dial(%s) reason = %q, want %q", tt.addr, d.Reason, tt.want)
			}
			if connected {
				t.Fatalf("dial(%s) tried to connect", tt.addr)
			}
		})
	}
}

// TestDialLetsGrantedLiteralThrough checks that a grant naming a
// non-public address by its literal lets dial go on to connect to exactly
// that address (the test's control stops it there).
func TestDialLetsGrantedLiteralThrough(t *testing.T) {
	c := New(Config{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}})
	var got string
	c.dialer.ControlContext = func(ctx context.Context, network, address string, rc syscall.RawConn) error {
		if err := controlDial(ctx, network, address, rc); err != nil {
			return err
		}
		got = address
		return errors.New("test: stop here")
	}
	prefixes := []Prefix{mustPrefix(t, "http://169.254.169.254/")}
	ctx := context.WithValue(context.Background(), namedKey{}, namedBy(prefixes))
	conn, err := c.dial(ctx, "tcp", "169.254.169.254:80")
	if conn != nil {
		conn.Close()
	}
	var d *DeniedError
	if errors.As(err, &d) {
		t.Fatalf("dial: %v, want the grant to let it through", err)
	}
	if got != "169.254.169.254:80" {
		t.Fatalf("dial connected to %q, want 169.254.169.254:80", got)
	}
}

func TestControlDialRefusesUncheckedAddress(t *testing.T) {
	checked := netip.MustParseAddrPort("127.0.0.1:443")
	ctx := context.WithValue(context.Background(), checkedKey{}, checked)
	for _, addr := range []string{"127.0.0.2:443", "127.0.0.1:444", "[::1]:443", "bogus"} {
		if err := controlDial(ctx, "tcp4", addr, nil); err == nil {
			t.Errorf("controlDial(%s) = nil, want an error", addr)
		}
	}
	if err := controlDial(ctx, "tcp4", "127.0.0.1:443", nil); err != nil {
		t.Errorf("controlDial(127.0.0.1:443) = %v, want nil", err)
	}
	if err := controlDial(context.Background(), "tcp4", "127.0.0.1:443", nil); err == nil {
		t.Error("controlDial without a checked address = nil, want an error")
	}
}

// TestDialRefusesLiteralTheOperatorAllowsNot: a grant naming a non-public
// address is not enough; the operator must allow its range too.
func TestDialRefusesLiteralTheOperatorAllowsNot(t *testing.T) {
	for _, allow := range [][]netip.Prefix{nil, {netip.MustParsePrefix("10.0.0.0/8")}} {
		c := New(Config{Allow: allow})
		c.dialer.ControlContext = func(context.Context, string, string, syscall.RawConn) error {
			t.Fatal("a connection was attempted")
			return nil
		}
		ctx := context.WithValue(context.Background(), namedKey{}, namedBy([]Prefix{mustPrefix(t, "http://169.254.169.254/")}))
		_, err := c.dial(ctx, "tcp", "169.254.169.254:80")
		var d *DeniedError
		if !errors.As(err, &d) || !strings.Contains(d.Reason, "allows no egress there") {
			t.Fatalf("allow %v: dial = %v, want a denial naming the operator's ranges", allow, err)
		}
	}
}

func TestCheckGrant(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.1.0.0/16")}
	for _, tt := range []struct {
		grant string
		want  string // "" means allowed
	}{
		{"https://api.example.net/v3/", ""},
		{"https://8.8.8.8/", ""},
		{"https://127.0.0.1:8443/v3/", ""},
		{"https://10.1.2.3/", ""},
		{"https://127.0.0.2/", "loopback"},
		{"http://169.254.169.254/latest/", "metadata"},
		{"http://[fd00:ec2::254]/", "metadata"},
		{"http://[::ffff:169.254.169.254]/", "IPv4-mapped"},
		{"http://[::1]/", "loopback"},
		{"https://10.2.0.1/", "private"},
		{"https://192.168.1.1/", "private"},
		{"http://100.100.100.200/", "metadata"},
		{"http://0.0.0.0/", "this-network"},
		{"https://localhost:8443/", "loopback name"},
		{"https://db.localhost/", "loopback name"},
		{"http://metadata.google.internal/", "metadata"},
	} {
		err := CheckGrant(tt.grant, allow)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckGrant(%q) = %v, want %q", tt.grant, err, tt.want)
		}
	}
}

func TestParseAllow(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1": "127.0.0.1/32", "10.1.0.0/16": "10.1.0.0/16", "::1": "::1/128", "::ffff:10.0.0.1": "10.0.0.1/32", "fd00::/8": "fd00::/8"} {
		if p, err := ParseAllow(in); err != nil || p.String() != want {
			t.Errorf("ParseAllow(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "10.1.2.3/16", "localhost", "10.0.0.0/33", "fe80::1%eth0", "1.2.3.4/8x"} {
		if p, err := ParseAllow(in); err == nil {
			t.Errorf("ParseAllow(%q) = %v, want an error", in, p)
		}
	}
}
