// Package metrics keeps the node's Prometheus metrics: invocations,
// durations, refusals by reason, instances running.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics records what the gateway does. It is safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	refusals    *prometheus.CounterVec
	denials     *prometheus.CounterVec
	connections *prometheus.CounterVec
	events      *prometheus.CounterVec
}

// Budget is one budget window's remainder, for the budget gauge.
type Budget struct {
	Function, Budget, Window string
	Left                     float64
}

// budgetCollector reports what is left of each budget window on scrape.
type budgetCollector struct {
	desc *prometheus.Desc
	list func() []Budget
}

func (c budgetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c budgetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.list() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, b.Left, b.Function, b.Budget, b.Window)
	}
}

// SetBudgets makes /metrics report moat_budget_remaining from list.
func (m *Metrics) SetBudgets(list func() []Budget) {
	m.reg.MustRegister(budgetCollector{
		desc: prometheus.NewDesc("moat_budget_remaining",
			"What is left of each budget window that has not ended (invocations or GB-seconds; fn _node is the node-wide budget). Leases count as spent.",
			[]string{"fn", "budget", "window"}, nil),
		list: list,
	})
}

// New returns Metrics on a registry of their own. running reports the
// instances running now.
func New(running func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_invocations_total", Help: "Invocations that ran, by function and HTTP status.",
		}, []string{"fn", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "moat_invocation_duration_seconds", Help: "Wall time of invocations that ran, from request to response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"fn"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_refusals_total", Help: "Requests refused before any instance started, by function and reason.",
		}, []string{"fn", "reason"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_capability_denials_total", Help: "Host calls refused for want of a grant, by function and capability.",
		}, []string{"fn", "capability"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_connections_refused_total", Help: "Connections closed as accepted, past the node's bound (total) or a source's (source), or refused for ambiguous request framing (framing).",
		}, []string{"reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_events_total", Help: "Deliveries of events to functions, by function and outcome (delivered, retried, dead_lettered, waited, skipped, replaced).",
		}, []string{"fn", "outcome"}),
	}
	reg.MustRegister(m.invocations, m.duration, m.refusals, m.denials, m.connections, m.events,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "moat_instances_running", Help: "Function instances running now."}, running),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Invocation records an invocation that ran. memory is its cap, which the
// metrics do not use.
func (m *Metrics) Invocation(fn string, status int, took time.Duration, memory int64) {
	m.invocations.WithLabelValues(fn, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(fn).Observe(took.Seconds())
}

// Refusal records a request refused before it ran.
func (m *Metrics) Refusal(fn, reason string) {
	m.refusals.WithLabelValues(fn, reason).Inc()
}

// Denied records a host call refused for want of a grant.
func (m *Metrics) Denied(fn, capability string) {
	m.denials.WithLabelValues(fn, capability).Inc()
}

// ConnectionRefused records a connection closed past a bound.
func (m *Metrics) ConnectionRefused(reason string) {
	m.connections.WithLabelValues(reason).Inc()
}

// Event records what became of one delivery of an event.
func (m *Metrics) Event(fn, outcome string) {
	m.events.WithLabelValues(fn, outcome).Inc()
}

// Lag is what one trigger has waiting, for the lag gauges.
type Lag struct {
	Function, Subject string
	Pending, InFlight float64
	DeadLetters       float64
}

type lagCollector struct {
	pending, inFlight, dead *prometheus.Desc
	list                    func() []Lag
}

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.inFlight
	ch <- c.dead
}

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, l := range c.list() {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, l.Pending, l.Function, l.Subject)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, l.InFlight, l.Function, l.Subject)
		if !seen[l.Function] {
			seen[l.Function] = true
			ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, l.DeadLetters, l.Function)
		}
	}
}

// SetLag makes /metrics report each trigger's lag and each function's dead
// letters from list, read on scrape.
func (m *Metrics) SetLag(list func() []Lag) {
	m.reg.MustRegister(lagCollector{
		pending:  prometheus.NewDesc("moat_trigger_pending", "Events published on a trigger's subject and not yet delivered.", []string{"fn", "subject"}, nil),
		inFlight: prometheus.NewDesc("moat_trigger_in_flight", "Events delivered to a trigger and not yet acknowledged (running, waiting or to be retried).", []string{"fn", "subject"}, nil),
		dead:     prometheus.NewDesc("moat_dead_letters", "Dead letters kept for a function.", []string{"fn"}, nil),
		list:     list,
	})
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
