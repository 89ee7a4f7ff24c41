package local

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// totalMemory is the machine's memory in bytes, read from /proc/meminfo,
// or 4 GiB where that cannot be read.
func totalMemory() uint64 {
	const fallback = 4 << 30
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return fallback
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kb, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return fallback
}
