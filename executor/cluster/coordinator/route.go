package coordinator

import (
	"net/http"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/infer/serve/router"
)

// routers are the coordinator's routers over the deployments, one per
// deployment, made at its first request: any coordinator routes OpenAI API
// calls to /v1/deployments/{name}/v1/... over the deployment's replicas
// (as the leader knows them: followers forward), as `sluice router
// --deployment` does but without scaling.
type routers struct {
	mu sync.Mutex
	by map[string]*router.Router
}

func (rs *routers) get(name string, newRouter func() *router.Router) *router.Router {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.by == nil {
		rs.by = map[string]*router.Router{}
	}
	if rs.by[name] == nil {
		rs.by[name] = newRouter()
	}
	return rs.by[name]
}

// route forwards /v1/deployments/{name}/v1/... to a replica of the
// deployment as /v1/...: prefix affinity, power of two choices on the
// reported queues, a retry before the first token. The caller's
// credential (the cluster's token) is not passed on: the replicas must
// serve without --api-key to be routed to here.
func (c *Coordinator) route(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var targets []router.Target
	now := c.cfg.Now().UTC()
	c.fsm.read(func(s *state.State) {
		for _, d := range c.met.deps.list(s, now, c.cfg.WorkerTimeout) {
			if d.Name == name {
				for _, rep := range d.Replicas {
					targets = append(targets, router.Target{URL: rep.URL, Load: rep.Running + rep.Waiting})
				}
			}
		}
	})
	rt := c.met.routers.get(name, func() *router.Router {
		cfg := router.DefaultConfig()
		cfg.Dynamic, cfg.Logger = true, c.log.With("deployment", name)
		rt, err := router.New(cfg)
		if err != nil {
			panic(err) // the default config with Dynamic: valid
		}
		return rt
	})
	rt.SetReplicas(targets)
	rest, _ := strings.CutPrefix(r.URL.Path, "/v1/deployments/"+name)
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = rest, ""
	r2.Header.Del("Authorization")
	r2.Header.Del(forwardedHeader)
	rt.ServeHTTP(rw, r2)
}
