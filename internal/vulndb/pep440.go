package vulndb

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// pep440 is a version as PEP 440 orders it. Numbers are held in uint64; a
// version with a larger number is refused rather than misordered.
type pep440 struct {
	epoch   uint64
	release []uint64 // trailing zeros removed: 1.0.0 == 1
	pre     int      // 0 none, 1 a, 2 b, 3 rc
	preN    uint64
	post    bool
	postN   uint64
	dev     bool
	devN    uint64
	local   []localPart // nil when there is no local version
}

// localPart is one segment of a local version label; a numeric segment
// sorts after every alphanumeric one.
type localPart struct {
	num   bool
	n     uint64
	label string
}

// parsePEP440 reads a version in any form PEP 440 accepts and normalises:
// case-insensitive, an optional "v", "N!" epochs, the spellings alpha, beta,
// c, pre, preview, rev and r, "-", "_" or "." as separators, implicit
// numbers ("1.0a" is "1.0a0", "1.0-1" is "1.0.post1") and local labels.
func parsePEP440(s string) (*pep440, error) {
	p := pepParser{s: strings.Trim(s, " \t\n\r\f\v")}
	v, ok := p.version()
	if !ok {
		return nil, fmt.Errorf("%q: %w", s, errVersion)
	}
	return v, nil
}

type pepParser struct {
	s   string
	i   int
	bad bool // a number overflowed
}

func (p *pepParser) version() (*pep440, bool) {
	v := &pep440{}
	p.letter('v')
	n, ok := p.number()
	if !ok {
		return nil, false
	}
	if p.letter('!') {
		v.epoch = n
		if n, ok = p.number(); !ok {
			return nil, false
		}
	}
	v.release = append(v.release, n)
	for p.i+1 < len(p.s) && p.s[p.i] == '.' && isDigit(p.s[p.i+1]) {
		p.i++
		n, _ = p.number()
		v.release = append(v.release, n)
	}
	for len(v.release) > 0 && v.release[len(v.release)-1] == 0 {
		v.release = v.release[:len(v.release)-1]
	}

	// Pre-release: [sep] (a|b|c|rc|alpha|beta|pre|preview) [sep] [N]
	mark := p.i
	p.sep()
	switch p.word("preview", "alpha", "beta", "pre", "rc", "a", "b", "c") {
	case "a", "alpha":
		v.pre = 1
	case "b", "beta":
		v.pre = 2
	case "rc", "c", "pre", "preview":
		v.pre = 3
	default:
		p.i = mark
	}
	if v.pre != 0 {
		v.preN = p.optNumber()
	}

	// Post-release: -N, or [sep] (post|rev|r) [sep] [N]
	mark = p.i
	if p.letter('-') && p.i < len(p.s) && isDigit(p.s[p.i]) {
		v.post = true
		v.postN, _ = p.number()
	} else {
		p.i = mark
		p.sep()
		if p.word("post", "rev", "r") != "" {
			v.post = true
			v.postN = p.optNumber()
		} else {
			p.i = mark
		}
	}

	// Development release: [sep] dev [sep] [N]
	mark = p.i
	p.sep()
	if p.word("dev") != "" {
		v.dev = true
		v.devN = p.optNumber()
	} else {
		p.i = mark
	}

	// Local version: + label ([-_.] label)*
	if p.letter('+') {
		for {
			start := p.i
			for p.i < len(p.s) && isAlnum(lower(p.s[p.i])) {
				p.i++
			}
			if p.i == start {
				return nil, false
			}
			seg := strings.ToLower(p.s[start:p.i])
			if n, err := strconv.ParseUint(seg, 10, 64); err == nil {
				v.local = append(v.local, localPart{num: true, n: n})
			} else if allDigits(seg) {
				return nil, false // numeric, but too large
			} else {
				v.local = append(v.local, localPart{label: seg})
			}
			if p.i == len(p.s) || !isSep(p.s[p.i]) {
				break
			}
			p.i++
		}
	}
	return v, p.i == len(p.s) && !p.bad
}

// letter consumes c if it comes next, ignoring case.
func (p *pepParser) letter(c byte) bool {
	if p.i < len(p.s) && lower(p.s[p.i]) == c {
		p.i++
		return true
	}
	return false
}

// sep consumes one "-", "_" or "." if it comes next.
func (p *pepParser) sep() {
	if p.i < len(p.s) && isSep(p.s[p.i]) {
		p.i++
	}
}

// word consumes the first of words that comes next, ignoring case, and
// returns it; "" when none does. Longer words must come first.
func (p *pepParser) word(words ...string) string {
	for _, w := range words {
		if len(p.s)-p.i >= len(w) && strings.EqualFold(p.s[p.i:p.i+len(w)], w) {
			p.i += len(w)
			return w
		}
	}
	return ""
}

// number consumes a run of digits.
func (p *pepParser) number() (uint64, bool) {
	start := p.i
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return 0, false
	}
	n, err := strconv.ParseUint(p.s[start:p.i], 10, 64)
	if err != nil {
		p.bad = true
	}
	return n, true
}

// optNumber consumes [sep] N after a pre, post or dev marker; the number is
// 0 when absent. A separator with no number after it is consumed too, as
// PEP 440's grammar allows ("1.0a-" is "1.0a0").
func (p *pepParser) optNumber() uint64 {
	p.sep()
	n, _ := p.number()
	return n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isSep(c byte) bool   { return c == '-' || c == '_' || c == '.' }
func isAlnum(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'z') }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// The pre-release rank of a version: a dev release of a final version sorts
// before its pre-releases, a final or post release after them.
const (
	rankDevOnly = iota
	rankPre
	rankNone
)

func (v *pep440) preRank() int {
	switch {
	case v.pre != 0:
		return rankPre
	case !v.post && v.dev:
		return rankDevOnly
	}
	return rankNone
}

func (v *pep440) compare(o version) int {
	w := o.(*pep440)
	if c := cmp.Compare(v.epoch, w.epoch); c != 0 {
		return c
	}
	for i := 0; i < max(len(v.release), len(w.release)); i++ {
		var a, b uint64
		if i < len(v.release) {
			a = v.release[i]
		}
		if i < len(w.release) {
			b = w.release[i]
		}
		if c := cmp.Compare(a, b); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(v.preRank(), w.preRank()); c != 0 {
		return c
	}
	if v.pre != 0 {
		if c := cmp.Compare(v.pre, w.pre); c != 0 {
			return c
		}
		if c := cmp.Compare(v.preN, w.preN); c != 0 {
			return c
		}
	}
	// No post release sorts before any post release.
	if c := compareOptional(v.post, v.postN, w.post, w.postN, false); c != 0 {
		return c
	}
	// No dev release sorts after any dev release.
	if c := compareOptional(v.dev, v.devN, w.dev, w.devN, true); c != 0 {
		return c
	}
	return compareLocal(v.local, w.local)
}

// compareOptional orders two optional numbers; absent sorts after every
// number when absentLast, before every number otherwise.
func compareOptional(aSet bool, a uint64, bSet bool, b uint64, absentLast bool) int {
	switch {
	case aSet && bSet:
		return cmp.Compare(a, b)
	case aSet == bSet:
		return 0
	case aSet == absentLast:
		return -1
	}
	return 1
}

// compareLocal orders local labels: none first, then segment by segment
// (labels before numbers, labels by text, numbers by value), a label that
// is a prefix of another first.
func compareLocal(a, b []localPart) int {
	if a == nil || b == nil {
		return cmp.Compare(btoi(a != nil), btoi(b != nil))
	}
	for i := 0; i < min(len(a), len(b)); i++ {
		x, y := a[i], b[i]
		switch {
		case x.num && y.num:
			if c := cmp.Compare(x.n, y.n); c != 0 {
				return c
			}
		case x.num != y.num:
			if x.num {
				return 1
			}
			return -1
		default:
			if c := strings.Compare(x.label, y.label); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(a), len(b))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// key writes the normalised form of v without trailing zeros in the
// release: versions that compare equal have equal keys.
func (v *pep440) key() string {
	var b strings.Builder
	if v.epoch != 0 {
		b.WriteString(strconv.FormatUint(v.epoch, 10))
		b.WriteByte('!')
	}
	if len(v.release) == 0 {
		b.WriteByte('0')
	}
	for i, n := range v.release {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(n, 10))
	}
	if v.pre != 0 {
		b.WriteString([...]string{"", "a", "b", "rc"}[v.pre])
		b.WriteString(strconv.FormatUint(v.preN, 10))
	}
	if v.post {
		b.WriteString(".post")
		b.WriteString(strconv.FormatUint(v.postN, 10))
	}
	if v.dev {
		b.WriteString(".dev")
		b.WriteString(strconv.FormatUint(v.devN, 10))
	}
	for i, l := range v.local {
		if i == 0 {
			b.WriteByte('+')
		} else {
			b.WriteByte('.')
		}
		if l.num {
			b.WriteString(strconv.FormatUint(l.n, 10))
		} else {
			b.WriteString(l.label)
		}
	}
	return b.String()
}
