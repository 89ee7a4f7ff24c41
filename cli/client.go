package cli

import (
	"flag"

	"github.com/sluicehq/sluice/executor/cluster/api"
)

// Client are the flags of the commands that call the coordinators
// (submit, jobs, job status, cluster status).
type Client struct {
	coordinators, tokenFile string
	tls                     TLSFlags
}

// Flags declares --coordinators, --token-file and --tls-ca in fs.
func (c *Client) Flags(fs *flag.FlagSet) {
	*c = Client{}
	fs.StringVar(&c.coordinators, "coordinators", "", "coordinator API addresses, comma-separated (or SLUICE_COORDINATORS)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the shared bearer token (or SLUICE_TOKEN)")
	c.tls.Declare(fs, false)
}

// Client is an API client of the coordinators the flags name.
func (c *Client) Client() (*api.Client, error) {
	urls, err := Coordinators(c.coordinators)
	if err != nil {
		return nil, err
	}
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
	return cl, nil
}
