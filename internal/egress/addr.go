package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// refusedRange is a block of addresses no call reaches unless a grant
// names the address itself.
type refusedRange struct {
	prefix netip.Prefix
	reason string
}

// metadataAddrs are the cloud instance metadata services. Each also falls
// in a refused range; listing them gives the refusal a clearer reason.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, ...
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task credentials
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
}

// refusedRanges are the non-public blocks, after the IANA special-purpose
// registries. An IPv6 address outside 2000::/3 is refused as well, so the
// IPv6 list need only name the blocks inside it, plus ones whose reason
// reads better than "not global unicast".
var refusedRanges = []refusedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "a this-network (0.0.0.0/8) address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a 6to4 relay address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},

	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol assignment address (Teredo, ORCHID, ...)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique-local (private) address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
)

// refusal returns why ip may not be dialled without a grant naming it, or
// "" if ip is a public address. An IPv4-mapped address is judged by the
// IPv4 address it maps, a NAT64 address (64:ff9b::/96) by the IPv4
// address it embeds.
func refusal(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.Zone() != "":
		return "an address with a zone"
	case ip.Is4In6():
		if r := refusal(ip.Unmap()); r != "" {
			return "the IPv4-mapped form of " + r
		}
		return ""
	case nat64.Contains(ip):
		b := ip.As16()
		if r := refusal(netip.AddrFrom4([4]byte(b[12:]))); r != "" {
			return "the NAT64 form of " + r
		}
		return ""
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return "a cloud metadata address"
		}
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return "not a global unicast IPv6 address"
	}
	return ""
}

// namedKey is the context key for the addresses a call's grants name as
// IP literals (a namedAddrs).
type namedKey struct{}

// namedAddrs lists the IP-literal hosts, with their ports, of a call's
// grants: the only non-public addresses the call may dial.
type namedAddrs []netip.AddrPort

// namedBy returns the addresses prefixes name as IP literals.
func namedBy(prefixes []Prefix) namedAddrs {
	var n namedAddrs
	for _, p := range prefixes {
		addr, err := netip.ParseAddr(p.Host)
		if err != nil {
			continue
		}
		port, err := strconv.ParseUint(p.Port, 10, 16)
		if err != nil {
			continue
		}
		n = append(n, netip.AddrPortFrom(addr, uint16(port)))
	}
	return n
}

func (n namedAddrs) contains(ap netip.AddrPort) bool {
	for _, x := range n {
		if x == ap {
			return true
		}
	}
	return false
}

// checkedKey is the context key for the one address dial has checked and
// is about to connect to (a netip.AddrPort).
type checkedKey struct{}

// dial is the Transport's DialContext. It resolves addr's host itself,
// refuses the whole dial if any resulting address is not public, and
// connects only to the addresses it checked. A non-public address passes
// only when addr's host is that address written as a literal and the
// call's grants (in ctx) name it with the same port: a name that resolves
// to it never does. A refusal is a *DeniedError without a Target, which Do
// fills with the URL being sent.
//
// The Transport detaches dials from the request's cancellation, so dial
// bounds itself by the client's timeout.
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return nil, &DeniedError{Reason: addr + ": port is not a number from 1 to 65535"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	named, _ := ctx.Value(namedKey{}).(namedAddrs)
	var ips []netip.Addr
	ip, err := netip.ParseAddr(host)
	literal := err == nil
	if literal {
		ips = []netip.Addr{ip}
	} else {
		ips, err = c.lookup(ctx, host)
		if err != nil {
			return nil, err
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	checked := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
		r := refusal(ip)
		switch {
		case r == "":
		case literal && named.contains(ap) && Allowed(ip, c.allow):
			// A grant names this very address, in a range the operator allows.
		case literal && named.contains(ap):
			return nil, &DeniedError{Reason: ip.String() + " is " + r + " and the node allows no egress there (moat serve --egress-allow)"}
		case literal:
			return nil, &DeniedError{Reason: ip.String() + " is " + r + " and no grant names it"}
		default:
			return nil, &DeniedError{Reason: host + " resolves to " + ip.String() + ", " + r + " (only a grant naming the address itself reaches it)"}
		}
		checked = append(checked, ap)
	}
	var errs []error
	for _, ap := range checked {
		conn, err := c.dialer.DialContext(context.WithValue(ctx, checkedKey{}, ap), network, ap.String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// controlDial runs just before a socket connects. It refuses any address
// but the one dial checked, so that no path through net.Dialer (a
// resolver, a fallback) can connect elsewhere.
func controlDial(ctx context.Context, _, address string, _ syscall.RawConn) error {
	want, ok := ctx.Value(checkedKey{}).(netip.AddrPort)
	got, err := netip.ParseAddrPort(address)
	if !ok || err != nil || got.Addr().Unmap() != want.Addr() || got.Port() != want.Port() {
		return &DeniedError{Reason: "connect to " + address + ": not the address that was checked"}
	}
	return nil
}

// Allowed reports whether ip falls in one of the ranges allow.
func Allowed(ip netip.Addr, allow []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckGrant refuses, at deploy, an egress grant no call under it could
// make or that reaches where only the operator may send functions: an
// address that is not public (loopback, private, link-local, cloud
// metadata, ...) outside the ranges allow, or a name that is loopback or a
// metadata service's by definition.
func CheckGrant(raw string, allow []netip.Prefix) error {
	p, err := ParsePrefix(raw)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(p.Host); err == nil {
		if r := refusal(ip); r != "" && !Allowed(ip, allow) {
			return fmt.Errorf("egress %q: %s is %s; the node's operator allows no egress there (moat serve --egress-allow %s)", truncate(raw), ip, r, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		}
		return nil
	}
	switch h := p.Host; {
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return fmt.Errorf("egress %q: %s is a loopback name; grant the address the operator allows instead", truncate(raw), h)
	case h == "metadata" || h == "metadata.google.internal" || strings.HasSuffix(h, ".metadata.google.internal"):
		return fmt.Errorf("egress %q: %s is a cloud metadata service", truncate(raw), h)
	}
	return nil
}

// ParseAllow reads an operator's allowed range: a CIDR ("10.1.0.0/16") or
// one address ("127.0.0.1").
func ParseAllow(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q: host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: not a CIDR or an IP address", truncate(s))
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}
