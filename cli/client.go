package cli

import (
	"flag"
	"net"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
)

// Client are the flags of the commands that call the coordinators
// (submit, jobs, job status, cluster status, schedule list/remove).
type Client struct {
	coordinators, tokenFile string
	tls                     TLSFlags
	timeout                 time.Duration
}

// DefaultTimeout is how long a command waits for some coordinator to
// answer (connect and retry through an election) before it fails.
const DefaultTimeout = 5 * time.Second

// Flags declares --coordinators, --token-file, --tls-ca and --timeout in fs.
func (c *Client) Flags(fs *flag.FlagSet) {
	*c = Client{}
	fs.StringVar(&c.coordinators, "coordinators", "", "coordinator API addresses, comma-separated (or SLUICE_COORDINATORS)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the shared bearer token (or SLUICE_TOKEN)")
	fs.DurationVar(&c.timeout, "timeout", DefaultTimeout, "give up when no coordinator answers within this long")
	c.tls.Declare(fs, false)
}

// Client is an API client of the coordinators the flags name. A call
// fails within about the --timeout when none answers: each connection
// attempt and the retries over all addresses are bounded by it.
func (c *Client) Client() (*api.Client, error) {
	urls, err := Coordinators(c.coordinators)
	if err != nil {
		return nil, err
	}
	return c.ClientOf(urls)
}

// ClientOf is Client for other addresses (one coordinator, say), with the
// flags' token, TLS and timeout.
func (c *Client) ClientOf(urls []string) (*api.Client, error) {
	tok, err := LoadToken(c.tokenFile)
	if err != nil {
		return nil, err
	}
	_, tc, err := c.tls.Configs()
	if err != nil {
		return nil, err
	}
	cl := api.NewClient(urls, tok)
	cl.SetTLS(tc)
	timeout := c.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cl.Retry = timeout
	// The dial is bounded so an address that drops packets fails fast;
	// the whole call keeps the API's longer limit (a job status --wait
	// long-polls).
	cl.HTTP = &http.Client{Timeout: cl.HTTP.Timeout, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: timeout,
		ForceAttemptHTTP2:   tc != nil,
		Proxy:               http.ProxyFromEnvironment,
	}}
	return cl, nil
}
