package serve

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/infer/engine"
)

// metrics are the server's Prometheus metrics, named like vLLM's with the
// sluice: prefix where they mean the same (vllm:num_requests_running is
// sluice:num_requests_running), labelled with model_name.
type metrics struct {
	ttft, itl, e2e  prometheus.Histogram
	prompt, gen     prometheus.Counter
	success         *prometheus.CounterVec
	rejected        prometheus.Counter
	promptHist, gHi prometheus.Histogram
}

func newMetrics(s *Server, reg *prometheus.Registry) *metrics {
	labels := prometheus.Labels{"model_name": s.cfg.ModelName}
	buckets := func(b ...float64) []float64 { return b }
	lat := buckets(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560)
	tok := buckets(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
	m := &metrics{
		ttft:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice:time_to_first_token_seconds", Help: "Histogram of time to first token in seconds.", ConstLabels: labels, Buckets: lat}),
		itl:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice:inter_token_latency_seconds", Help: "Histogram of inter-token latency in seconds.", ConstLabels: labels, Buckets: lat}),
		e2e:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice:e2e_request_latency_seconds", Help: "Histogram of end to end request latency in seconds.", ConstLabels: labels, Buckets: lat}),
		prompt: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice:prompt_tokens_total", Help: "Number of prefill tokens processed.", ConstLabels: labels}),
		gen:    prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice:generation_tokens_total", Help: "Number of generation tokens processed.", ConstLabels: labels}),
		success: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice:request_success_total", Help: "Count of successfully processed requests.", ConstLabels: labels},
			[]string{"finished_reason"}),
		rejected:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice:request_rejected_total", Help: "Requests answered 429 because the queue was full.", ConstLabels: labels}),
		promptHist: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice:request_prompt_tokens", Help: "Number of prefill tokens processed.", ConstLabels: labels, Buckets: tok}),
		gHi:        prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice:request_generation_tokens", Help: "Number of generation tokens processed.", ConstLabels: labels, Buckets: tok}),
	}
	g := func(name, help string, f func(engine.Gauges) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return f(s.e.Gauges()) })
	}
	c := func(name, help string, f func(engine.Gauges) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return f(s.e.Gauges()) })
	}
	st := func(name, help string, f func(engine.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return f(s.e.Stats()) })
	}
	reg.MustRegister(m.ttft, m.itl, m.e2e, m.prompt, m.gen, m.success, m.rejected, m.promptHist, m.gHi,
		g("sluice:num_requests_running", "Number of sequences in the running batch.", func(g engine.Gauges) float64 { return float64(g.Running) }),
		g("sluice:num_requests_waiting", "Number of sequences waiting to be processed.", func(g engine.Gauges) float64 { return float64(g.Waiting) }),
		g("sluice:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", func(g engine.Gauges) float64 {
			if g.NumBlocks == 0 {
				return 0
			}
			return 1 - float64(g.FreeBlocks)/float64(g.NumBlocks)
		}),
		c("sluice:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.", func(g engine.Gauges) float64 { return float64(g.PrefixQueriedTokens) }),
		c("sluice:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", func(g engine.Gauges) float64 { return float64(g.PrefixHitTokens) }),
		st("sluice:spec_decode_num_draft_tokens_total", "Speculative decoding: draft tokens proposed.", func(s engine.Stats) float64 { return float64(s.SpecDraftTokens) }),
		st("sluice:spec_decode_num_accepted_tokens_total", "Speculative decoding: draft tokens accepted.", func(s engine.Stats) float64 { return float64(s.SpecAcceptedTokens) }),
		st("sluice:prefill_steps_total", "Engine steps that computed a prompt chunk (or recomputed a preempted sequence).", func(s engine.Stats) float64 { return float64(s.PrefillSteps) }),
		st("sluice:prefill_step_seconds_total", "Wall-clock seconds of the prefill steps, schedule to sampled tokens.", func(s engine.Stats) float64 { return s.PrefillSeconds }),
		st("sluice:decode_steps_total", "Engine steps that only decoded (one token a sequence, drafts aside).", func(s engine.Stats) float64 { return float64(s.DecodeSteps) }),
		st("sluice:decode_step_seconds_total", "Wall-clock seconds of the decode steps, schedule to sampled tokens.", func(s engine.Stats) float64 { return s.DecodeSeconds }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice:spec_decode_draft_acceptance_rate", Help: "Speculative decoding: share of draft tokens accepted.", ConstLabels: labels},
			func() float64 { return s.e.Stats().SpecAcceptanceRate }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice:num_requests_admitted", Help: "Completions the server has admitted and not finished (bounded by --max-queue).", ConstLabels: labels},
			func() float64 { return float64(s.admitted.Load()) }),
	)
	return m
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// tracker times one HTTP request's completions.
type tracker struct {
	m     *metrics
	start time.Time
	mu    sync.Mutex
	last  map[int]time.Time // per choice: when its latest output came
}

func (m *metrics) start() *tracker {
	return &tracker{m: m, start: time.Now(), last: map[int]time.Time{}}
}

// output records one Output of choice i.
func (t *tracker) output(i int, o engine.Output) {
	now := time.Now()
	t.mu.Lock()
	prev, seen := t.last[i]
	t.last[i] = now
	t.mu.Unlock()
	if k := len(o.TokenIDs); k > 0 {
		if !seen {
			t.m.ttft.Observe(now.Sub(t.start).Seconds())
			k--
			prev = now
		}
		if k > 0 {
			d := now.Sub(prev).Seconds() / float64(k)
			for range k {
				t.m.itl.Observe(d)
			}
		}
	}
	if o.Finished {
		t.m.e2e.Observe(now.Sub(t.start).Seconds())
		if o.Index == 0 {
			t.m.prompt.Add(float64(o.PromptTokens))
			t.m.promptHist.Observe(float64(o.PromptTokens))
		}
		t.m.gen.Add(float64(o.CompletionTokens))
		t.m.gHi.Observe(float64(o.CompletionTokens))
		if o.Err == nil {
			t.m.success.WithLabelValues(o.FinishReason).Inc()
		}
	}
}
