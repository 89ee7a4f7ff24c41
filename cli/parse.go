package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Coordinators splits a --coordinators value, or SLUICE_COORDINATORS when
// it is empty, into the coordinators' API addresses.
func Coordinators(flagValue string) ([]string, error) {
	v := flagValue
	if v == "" {
		v = os.Getenv("SLUICE_COORDINATORS")
	}
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no coordinators: give --coordinators host:port[,host:port] or set SLUICE_COORDINATORS")
	}
	return out, nil
}

// LoadToken reads the bearer token from file (--token-file) or, when file
// is "", from SLUICE_TOKEN.
func LoadToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv("SLUICE_TOKEN")); t != "" {
		return t, nil
	}
	return "", errors.New("no token: give --token-file FILE or set SLUICE_TOKEN")
}

// LoadSecret reads the cluster secret from file (--cluster-secret-file) or
// SLUICE_CLUSTER_SECRET; "" when neither is given.
func LoadSecret(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv("SLUICE_CLUSTER_SECRET")), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--cluster-secret-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("--cluster-secret-file %s: want at least 16 characters (openssl rand -hex 32 > %s)", file, file)
	}
	return t, nil
}

// numCPU is what a worker offers without --resources cpu=N.
var numCPU = runtime.NumCPU

// ParseResources reads a --resources value, cpu=N,gpu=N,memory=SIZE; the
// CPUs default to all of this machine's.
func ParseResources(s string) (state.Resources, error) {
	r := state.Resources{CPU: numCPU()}
	if s == "" {
		return r, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return r, fmt.Errorf("--resources %q: want cpu=N,gpu=N,memory=SIZE", s)
		}
		var err error
		switch k {
		case "cpu":
			r.CPU, err = strconv.Atoi(v)
		case "gpu":
			r.GPU, err = strconv.Atoi(v)
		case "memory", "mem":
			r.Memory, err = ParseSize(v)
		default:
			return r, fmt.Errorf("--resources: unknown resource %q: want cpu, gpu or memory", k)
		}
		if err != nil || r.CPU < 0 || r.GPU < 0 || r.Memory < 0 {
			return r, fmt.Errorf("--resources %s=%q: want a non-negative number", k, v)
		}
	}
	return r, nil
}

// ParseSize reads a byte size: 512, 64MiB, 16GiB, 2GB, 1TiB.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			s, mul = s[:len(s)-len(u.suffix)], u.mul
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (GiB, MB, …)", s)
	}
	return int64(f * float64(mul)), nil
}
